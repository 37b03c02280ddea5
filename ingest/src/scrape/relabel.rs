//! Prometheus's relabelling, applied to targets (`relabel_configs`) and to
//! scraped series (`metric_relabel_configs`).

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use sextant_model::is_valid_label_name;

use super::config::{RelabelAction, RelabelConfig};

/// A label set being rewritten: names to values, sorted by name.
pub type LabelMap = BTreeMap<String, String>;

/// Applies `steps` in order. `false` means the set was dropped.
pub fn relabel(labels: &mut LabelMap, steps: &[RelabelConfig]) -> bool {
    steps.iter().all(|step| apply(labels, step))
}

fn apply(labels: &mut LabelMap, step: &RelabelConfig) -> bool {
    use RelabelAction as A;
    let joined = || {
        step.source_labels
            .iter()
            .map(|name| labels.get(&name.0).map_or("", String::as_str))
            .collect::<Vec<_>>()
            .join(&step.separator)
    };
    let target = step.target_label.as_deref().unwrap_or_default();
    match step.action {
        A::Keep => return step.regex.is_match(&joined()),
        A::Drop => return !step.regex.is_match(&joined()),
        A::KeepEqual => return labels.get(target).map_or("", String::as_str) == joined(),
        A::DropEqual => return labels.get(target).map_or("", String::as_str) != joined(),
        A::Replace => {
            let value = joined();
            let Some(captures) = step.regex.captures(&value) else {
                return true;
            };
            let mut name = String::new();
            captures.expand(target, &mut name);
            if !is_valid_label_name(&name) {
                return true;
            }
            let mut replaced = String::new();
            captures.expand(&step.replacement, &mut replaced);
            if replaced.is_empty() {
                labels.remove(&name);
            } else {
                labels.insert(name, replaced);
            }
        }
        A::Lowercase => set(labels, target, joined().to_lowercase()),
        A::Uppercase => set(labels, target, joined().to_uppercase()),
        A::HashMod => {
            let digest = Md5::digest(joined().as_bytes());
            // Prometheus sums the digest's last eight bytes, big-endian.
            let mut last = [0u8; 8];
            last.copy_from_slice(&digest[8..16]);
            let hash = u64::from_be_bytes(last) % step.modulus;
            set(labels, target, hash.to_string());
        }
        A::LabelMap => {
            let renamed: Vec<(String, String)> = labels
                .iter()
                .filter_map(|(name, value)| {
                    let captures = step.regex.captures(name)?;
                    let mut new_name = String::new();
                    captures.expand(&step.replacement, &mut new_name);
                    Some((new_name, value.clone()))
                })
                .collect();
            for (name, value) in renamed {
                set(labels, &name, value);
            }
        }
        A::LabelDrop => labels.retain(|name, _| !step.regex.is_match(name)),
        A::LabelKeep => labels.retain(|name, _| step.regex.is_match(name)),
    }
    true
}

fn set(labels: &mut LabelMap, name: &str, value: String) {
    if value.is_empty() {
        labels.remove(name);
    } else {
        labels.insert(name.to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(yaml: &str) -> Vec<RelabelConfig> {
        serde_norway::from_str(yaml).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelMap {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn replace_keep_drop_and_label_actions() {
        let mut set = labels(&[
            ("__address__", "node-1:9100"),
            ("__meta_env", "prod"),
            ("__meta_team", "core"),
            ("tmp_x", "1"),
        ]);
        let ok = relabel(
            &mut set,
            &steps(
                r#"
- source_labels: [__address__]
  regex: '(.*):\d+'
  target_label: host
- action: labelmap
  regex: '__meta_(.+)'
- action: labeldrop
  regex: 'tmp_.*'
- source_labels: [env, team]
  separator: '/'
  target_label: owner
  action: uppercase
- source_labels: [env]
  regex: prod
  action: keep
"#,
            ),
        );
        assert!(ok);
        assert_eq!(set["host"], "node-1");
        assert_eq!(set["env"], "prod");
        assert_eq!(set["owner"], "PROD/CORE");
        assert!(!set.contains_key("tmp_x"));

        let mut staging = labels(&[("env", "staging")]);
        assert!(!relabel(
            &mut staging,
            &steps("- {source_labels: [env], regex: prod, action: keep}")
        ));
        let mut dropped = labels(&[("env", "prod")]);
        assert!(!relabel(
            &mut dropped,
            &steps("- {source_labels: [env], regex: 'pr.*', action: drop}")
        ));
        let mut equal = labels(&[("a", "x"), ("b", "x")]);
        assert!(!relabel(
            &mut equal,
            &steps("- {source_labels: [a], target_label: b, action: dropequal}")
        ));
        let mut emptied = labels(&[("a", "x")]);
        assert!(relabel(
            &mut emptied,
            &steps("- {source_labels: [nope], regex: '', target_label: a, replacement: ''}")
        ));
        assert!(emptied.is_empty());
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // Prometheus takes the md5 digest's last eight bytes as a big-endian u64.
        let mut set = labels(&[("a", "foo")]);
        relabel(
            &mut set,
            &steps("- {source_labels: [a], modulus: 1000, target_label: shard, action: hashmod}"),
        );
        // md5("foo") = acbd18db4cc2f85cedef654fccc4a4d8; last 8 bytes 0xedef654fccc4a4d8.
        let expected = 0xedef_654f_ccc4_a4d8_u64 % 1000;
        assert_eq!(set["shard"], expected.to_string());
    }
}
