//! Hostile input: nesting far past the budget, megabyte lines, outputs
//! that would grow without bound, and random garbage. Nothing may panic,
//! overflow the stack, or allocate without limit.

use sextant_model::depth;

use super::tests::*;
use super::{Pipeline, funcs, unwrap_value};
use crate::logql::ast::{self, CmpOp, Conversion, LabelSel, LineOp, Stage};

#[test]
fn deep_json_does_not_overflow() {
    let mb = 1 << 20;
    let brackets = "[".repeat(mb);
    let (_, lbls) = run(&[json()], &brackets, &[]).unwrap();
    assert_eq!(lbls["__error__"], "JSONParserErr");
    let inside = format!("{{\"a\": {brackets}");
    let (_, lbls) = run(&[json()], &inside, &[]).unwrap();
    assert_eq!(lbls["__error__"], "JSONParserErr");
    let closed = format!(
        "{{\"a\": {}{}, \"b\": 1}}",
        "[".repeat(mb / 2),
        "]".repeat(mb / 2)
    );
    let (_, lbls) = run(&[json()], &closed, &[]).unwrap();
    assert_eq!(lbls, labels(&[("b", "1")]));
    let (_, lbls) = run(
        &[json_params(&[("x", "a[0][0][0]"), ("b", "b")])],
        &closed,
        &[],
    )
    .unwrap();
    assert_eq!(lbls["b"], "1");
    assert!(lbls["x"].starts_with("[[[["));
    let objects = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let (_, lbls) = run(&[json()], &objects, &[]).unwrap();
    assert_eq!(lbls.len(), 1);
    assert!(lbls.keys().next().unwrap().starts_with("a_a_a_a"));
    let (line, lbls) = run(&[Stage::Parser(ast::Parser::Unpack)], &objects, &[]).unwrap();
    assert_eq!(line, objects);
    assert!(lbls.is_empty());
}

#[test]
fn deep_templates_are_refused_at_compile_time() {
    let deep_if = format!(
        "{}x{}",
        "{{if .a}}".repeat(100_000),
        "{{end}}".repeat(100_000)
    );
    let err = Pipeline::new(&[line_format(&deep_if)]).unwrap_err();
    assert!(err.contains("query.max_depth"), "{err}");
    let deep_paren = format!("{{{{ {}.a{} }}}}", "(".repeat(100_000), ")".repeat(100_000));
    let err = Pipeline::new(&[line_format(&deep_paren)]).unwrap_err();
    assert!(err.contains("query.max_depth"), "{err}");
    // At the budget it compiles and runs, on a thread with the stack the
    // query threads get.
    let n = depth::max_depth();
    let at_budget = format!("{}x{}", "{{if .a}}".repeat(n), "{{end}}".repeat(n));
    let parens = format!("{{{{ {}.a{} }}}}", "(".repeat(n), ")".repeat(n));
    std::thread::Builder::new()
        .stack_size(depth::stack_size())
        .spawn(move || {
            let (line, _) = run(&[line_format(&at_budget)], "l", &[("a", "1")]).unwrap();
            assert_eq!(line, "x");
            let (line, _) = run(&[line_format(&parens)], "l", &[("a", "1")]).unwrap();
            assert_eq!(line, "1");
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn megabyte_lines_go_through_every_stage() {
    let big = format!(
        "k=v msg=\"{}\" {}",
        "x".repeat(1 << 20),
        "[{<".repeat(100_000)
    );
    let stages = [
        line_filter(LineOp::Regex, &["k=v"]),
        line_filter(LineOp::Pattern, &["<_> msg=<_>"]),
        logfmt(false, false, &[]),
        json(),
        Stage::Parser(ast::Parser::Pattern("<a>=<b> <_>".to_owned())),
        Stage::Parser(ast::Parser::Regexp("(?P<r>x+)".to_owned())),
        Stage::Parser(ast::Parser::Unpack),
        Stage::Decolorize,
        Stage::LabelFormat(vec![template("n", "{{ len __line__ }}")]),
        line_format("{{ __line__ }}{{ __line__ }}"),
    ];
    let (line, lbls) = run(&stages, &big, &[]).unwrap();
    assert_eq!(line.len(), 2 * big.len());
    assert_eq!(lbls["k"], "v");
    assert_eq!(lbls["a"], "k");
    assert_eq!(lbls["r"].len(), 1 << 20);
    assert_eq!(lbls["n"], big.len().to_string());
    assert_eq!(lbls["__error__"], "JSONParserErr");
    // Growing a line past the output limit is an error, not an allocation.
    for blowup in [
        "{{__line__}}".repeat(32).as_str(),
        r#"{{ replace "" __line__ __line__ }}"#,
        r#"{{ Replace __line__ "x" __line__ -1 }}"#,
        r#"{{ regexReplaceAll "x" __line__ (repeat 100 "$0") }}"#,
        r#"{{ html (html (html (html (html (html (html (html (repeat 1000000 "<")))))))) }}"#,
        r#"{{ indent 100 __line__ }}{{ nindent 1000000000 "x" }}"#,
    ] {
        let (line, lbls) = run(&[line_format(blowup)], &big, &[]).unwrap();
        assert!(line == big, "{blowup}");
        assert_eq!(lbls["__error__"], "TemplateFormatErr", "{blowup}");
        assert!(
            lbls["__error_details__"].contains("larger than"),
            "{blowup}"
        );
    }
}

#[test]
fn the_scratch_state_does_not_leak_between_lines() {
    let pipeline = Pipeline::new(&[json()]).unwrap();
    for _ in 0..3 {
        let mut line = r#"{"level":"error"}"#.to_owned();
        let mut lbls = labels(&[]);
        assert!(pipeline.process(0, &mut line, &mut lbls));
        assert_eq!(lbls, labels(&[("level", "error")]));
        let mut lbls = labels(&[("level", "info")]);
        assert!(pipeline.process(0, &mut line, &mut lbls));
        assert_eq!(
            lbls,
            labels(&[("level", "info"), ("level_extracted", "error")])
        );
    }
}

/// A cheap deterministic generator of nasty inputs: templates made of
/// random calls on random arguments, lines glued from fragments of every
/// syntax here. Nothing may panic.
#[test]
fn random_inputs_never_panic() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let functions: Vec<&str> = funcs::TABLE.iter().map(|(name, ..)| *name).collect();
    let operands = [
        ".a",
        ".b",
        ".num",
        ".neg",
        ".dur",
        ".size",
        ".time",
        ".missing",
        ".",
        "$",
        "\"x\"",
        "\"%d|%s|%v|%q|%x|%5.2f|%-3s|%e|%g|%c|%%|%\"",
        "\"2006-01-02 Jan Monday MST .000 .999 _2 __2 002 3:04PM Z07:00 -0700\"",
        "\"(a\"",
        "\"a*\"",
        "`r\\n`",
        "'c'",
        "1",
        "-2",
        "0",
        "3.5",
        "-1e300",
        "1e308",
        "0x1f",
        "9223372036854775807",
        "-9223372036854775807",
        "true",
        "nil",
        "__line__",
        "__timestamp__",
        "now",
    ];
    let line_bits = [
        "{",
        "}",
        "[",
        "]",
        "\"",
        ":",
        ",",
        "a",
        "=",
        " ",
        "\\",
        "\\u",
        "d83d",
        "null",
        "true",
        "1.5e3",
        "-",
        "é",
        "\u{1b}[31m",
        "<",
        ">",
        "_entry",
        "\"_entry\":\"x\"",
        "k=v",
        "\t",
        "msg=\"a b\"",
        "\u{0}",
        "🙂",
    ];
    let stream = [
        ("a", "1"),
        ("b", "é🙂"),
        ("num", "42.5"),
        ("neg", "-7"),
        ("dur", "1h2m"),
        ("size", "3 MiB"),
        ("time", "1679577215"),
    ];
    let mut compiled = 0;
    for round in 0..3000 {
        let mut text = String::new();
        let mut open_ifs = 0;
        for _ in 0..next(6) {
            match next(6) {
                0 => text.push_str(" text "),
                1 => {
                    text.push_str("{{ if ");
                    text.push_str(operands[next(operands.len())]);
                    text.push_str(" }}");
                    open_ifs += 1;
                }
                2 if open_ifs > 0 => {
                    text.push_str(["{{ else }}", "{{- end -}}", "{{ end }}"][next(3)]);
                    open_ifs -= usize::from(!text.ends_with("{{ else }}"));
                }
                _ => {
                    text.push_str(["{{ ", "{{- "][next(2)]);
                    for c in 0..1 + next(3) {
                        if c > 0 {
                            text.push_str(" | ");
                        }
                        let f = functions[next(functions.len())];
                        text.push_str(f);
                        for _ in 0..next(4) {
                            text.push(' ');
                            if next(5) == 0 {
                                text.push('(');
                                text.push_str(functions[next(functions.len())]);
                                text.push(' ');
                                text.push_str(operands[next(operands.len())]);
                                text.push(')');
                            } else {
                                text.push_str(operands[next(operands.len())]);
                            }
                        }
                    }
                    text.push_str([" }}", " -}}"][next(2)]);
                }
            }
        }
        for _ in 0..open_ifs {
            text.push_str("{{end}}");
        }
        let line: String = (0..next(40))
            .map(|_| line_bits[next(line_bits.len())])
            .collect();
        let mut stages = vec![
            json(),
            logfmt(round % 2 == 0, round % 3 == 0, &[]),
            json_params(&[("x", "a[0].b"), ("y", "[\"k\"]")]),
            logfmt(round % 2 == 1, false, &[("z", "k")]),
            Stage::Parser(ast::Parser::Pattern("<p>=<q> <_>".to_owned())),
            Stage::Parser(ast::Parser::Unpack),
            Stage::Decolorize,
            Stage::LabelFilter(or(
                number("a", CmpOp::Gt, 0.0),
                and(duration("b", CmpOp::Lt, 1.0), size("p", CmpOp::Ge, 1.0)),
            )),
            Stage::Drop(vec![LabelSel::Name("q".to_owned())]),
        ];
        if Pipeline::new(&[line_format(&text)]).is_ok() {
            compiled += 1;
            stages.push(Stage::LabelFormat(vec![
                template("t", &text),
                rename("r", "a"),
            ]));
            stages.push(line_format(&text));
        }
        stages.push(line_filter(LineOp::Pattern, &["<_>a<_>"]));
        let pipeline = Pipeline::new(&stages).unwrap();
        let mut line = line.clone();
        let mut lbls = labels(&stream);
        pipeline.process(
            i64::from(round) * 1_000_000_007 - 2_000_000_000_000,
            &mut line,
            &mut lbls,
        );
        for conversion in [Conversion::Number, Conversion::Duration, Conversion::Bytes] {
            let _ = unwrap_value(&mut lbls, "a", conversion);
        }
    }
    // Enough of them were well-formed to have exercised the functions.
    assert!(compiled > 300, "{compiled}");
}
