//! What the fuzz targets share: inputs that grow into deep nesting, and a
//! small stack to run them on.
//!
//! A stack overflow is the one crash Rust cannot turn into an error, and a
//! coverage-guided fuzzer rarely stumbles on the thousand nested brackets it
//! takes to find one. So an input may ask for repetition ([`expand`]): the
//! fuzzer mutates a few bytes and gets `sum(` nested 40,000 deep. And the
//! parsers run on a thread whose stack is small for a small depth budget
//! ([`on_small_stack`]): within the budget it is ample, past it any
//! recursion that escaped a depth check overflows at once, and libFuzzer
//! reports the abort as a crash.

use std::borrow::Cow;
use std::sync::Once;

/// The depth budget the small stack is sized for.
const DEPTH: usize = 48;

/// `query.max_depth` while fuzzing: [`DEPTH`], or `SEXTANT_FUZZ_DEPTH` to
/// see what the budget guards against: set very high, the deep seeds
/// overflow the (unchanged) small stack at once.
pub fn fuzz_depth() -> usize {
    std::env::var("SEXTANT_FUZZ_DEPTH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEPTH)
}

/// The longest input [`expand`] makes.
const MAX_EXPANDED: usize = 1 << 20;

/// An input as the target should see it. `0xFE n_lo n_hi` then five parts
/// split by `0x00`, `prefix open inner close suffix`, is `prefix`, `open` n
/// times, `inner`, `close` n times, `suffix`; `0xFD n_lo n_hi` then `prefix
/// term separator suffix` is `term` n times joined by `separator`, between
/// `prefix` and `suffix`. Anything else is itself. Expansions stop at 1 MiB.
pub fn expand(data: &[u8]) -> Cow<'_, [u8]> {
    let Some((&marker, rest)) = data.split_first() else {
        return Cow::Borrowed(data);
    };
    if !matches!(marker, 0xFD | 0xFE) || rest.len() < 2 {
        return Cow::Borrowed(data);
    }
    let n = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
    let mut parts = rest[2..].splitn(5, |&b| b == 0);
    let mut part = || parts.next().unwrap_or_default();
    let prefix = part();
    let mut out = prefix.to_vec();
    if marker == 0xFE {
        let (open, inner, close, suffix) = (part(), part(), part(), part());
        let n = n.min(MAX_EXPANDED / (open.len() + close.len()).max(1));
        for _ in 0..n {
            out.extend_from_slice(open);
        }
        out.extend_from_slice(inner);
        for _ in 0..n {
            out.extend_from_slice(close);
        }
        out.extend_from_slice(suffix);
    } else {
        let (term, separator, suffix) = (part(), part(), part());
        let n = n.min(MAX_EXPANDED / (term.len() + separator.len()).max(1));
        for i in 0..n.max(1) {
            if i > 0 {
                out.extend_from_slice(separator);
            }
            out.extend_from_slice(term);
        }
        out.extend_from_slice(suffix);
    }
    Cow::Owned(out)
}

/// Stack for the fuzzed work: a base for everything that does not nest,
/// and the production allowance per level of the budget.
fn small_stack() -> usize {
    (1 << 20) + DEPTH * 48 * 1024
}

/// Lets libFuzzer report a stack overflow as a crash, with its input saved.
///
/// A fuzz target has no Rust runtime start-up, so nothing catches the
/// fault on a thread's guard page, and libFuzzer's own handler would run
/// on the overflowed stack and die silently. libFuzzer keeps `SA_ONSTACK`
/// only when the handler it replaces had it: so a placeholder handler with
/// it is installed before libFuzzer sets its own (call this from the
/// target's `init`), and each fuzzing thread gets an alternate signal stack.
pub fn catch_stack_overflows() {
    extern "C" fn placeholder(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // libFuzzer installs its handler over this one at start-up.
        std::process::abort();
    }
    // SAFETY: a zeroed sigaction is a valid value to fill in; the handler
    // has the SA_SIGINFO signature and only aborts.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = placeholder as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut());
    }
}

/// An alternate signal stack for the calling thread, for as long as this
/// value lives.
struct AlternateSignalStack {
    _memory: Vec<u8>,
}

impl AlternateSignalStack {
    fn install() -> Self {
        let mut memory = vec![0u8; 256 * 1024];
        let stack = libc::stack_t {
            ss_sp: memory.as_mut_ptr().cast(),
            ss_flags: 0,
            ss_size: memory.len(),
        };
        // SAFETY: `stack` points at memory this value owns; `drop` disables
        // the alternate stack before the memory is freed.
        unsafe {
            libc::sigaltstack(&stack, std::ptr::null_mut());
        }
        Self { _memory: memory }
    }
}

impl Drop for AlternateSignalStack {
    fn drop(&mut self) {
        let disable = libc::stack_t {
            ss_sp: std::ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: disabling takes no memory; the signal handlers are done
        // with the stack once the work on this thread has returned.
        unsafe {
            libc::sigaltstack(&disable, std::ptr::null_mut());
        }
    }
}

/// Runs `work` on a thread with a small stack under the fuzzing budget.
pub fn on_small_stack<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    static LIMITS: Once = Once::new();
    LIMITS.call_once(|| {
        sextant_model::depth::set_limits(fuzz_depth(), MAX_EXPANDED);
    });
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .stack_size(small_stack())
            .spawn_scoped(scope, || {
                let _alternate = AlternateSignalStack::install();
                work()
            })
            .expect("spawn the fuzzing thread");
        match worker.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_expand() {
        assert_eq!(&*expand(b"abc"), b"abc");
        assert_eq!(
            &*expand(b"\xFE\x03\x00<\x00f(\x00x\x00)\x00>"),
            b"<f(f(f(x)))>"
        );
        assert_eq!(&*expand(b"\xFD\x03\x00\x001\x00+"), b"1+1+1");
        assert!(expand(b"\xFE\xFF\xFF\x00(\x00x\x00)").len() <= MAX_EXPANDED + 1);
    }
}
