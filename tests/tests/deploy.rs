//! The files under `deploy/`, checked mechanically (no Docker engine or
//! cluster runs here): every YAML parses; every Sextant config in them
//! (the example, the compose file's, the Kubernetes ConfigMap's) passes
//! `sextant check-config`; the Dockerfile, compose file, manifests and
//! systemd unit have what running in production needs; `systemd-analyze
//! verify` and `promtool check config` accept what they can check; the
//! shipper snippets point at Sextant's ports.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sextant_tests::run_sextant;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every document of a YAML file, as JSON values.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
        })
        .collect()
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn check_config(path: &Path) {
    let out = run_sextant(&["check-config", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "sextant check-config {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_yaml_parses_and_every_sextant_config_passes_check_config() {
    let mut all = Vec::new();
    files(&deploy(), &mut all);
    let yamls: Vec<&PathBuf> = all
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    assert!(yamls.len() >= 10, "{yamls:?}");
    for path in &yamls {
        assert!(
            !yaml_documents(path).is_empty(),
            "{} is empty",
            path.display()
        );
    }
    check_config(&deploy().join("sextant.yaml"));
    check_config(&deploy().join("compose/sextant.yaml"));

    // The ConfigMap's files, as the pod sees them under /etc/sextant.
    let manifests = yaml_documents(&deploy().join("kubernetes/sextant.yaml"));
    let config_map = manifests
        .iter()
        .find(|m| m["kind"] == "ConfigMap")
        .expect("a ConfigMap");
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in config_map["data"].as_object().unwrap() {
        std::fs::write(dir.path().join(name), text.as_str().unwrap()).unwrap();
    }
    check_config(&dir.path().join("sextant.yaml"));
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_as_a_non_root_user_with_a_health_check() {
    let text = read(&deploy().join("Dockerfile"));
    let instructions: Vec<(String, String)> = text
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (op, rest) = l.split_once(' ').unwrap_or((l, ""));
            (op.to_uppercase(), rest.trim().to_owned())
        })
        .collect();
    let all = |op: &str| -> Vec<&str> {
        instructions
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, r)| r.as_str())
            .collect()
    };
    assert!(all("FROM").len() >= 2, "a multi-stage build");
    assert!(all("FROM")[0].contains(" AS build"));
    let user = all("USER");
    let last_user = user.last().expect("a USER");
    let uid: u32 = last_user.split(':').next().unwrap().parse().unwrap();
    assert!(uid >= 1000, "not root: {last_user}");
    assert!(all("HEALTHCHECK")[0].contains("/-/ready"));
    assert!(all("VOLUME")[0].contains("/var/lib/sextant"));
    let exposed: Vec<&str> = all("EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .collect();
    for port in [
        "7070/tcp", "4317/tcp", "4318/tcp", "8125/udp", "8125/tcp", "5959/tcp", "5959/udp",
    ] {
        assert!(exposed.contains(&port), "EXPOSE {port}: {exposed:?}");
    }
    assert!(all("CMD")[0].contains(r#""--bind", "0.0.0.0""#));
    // The context leaves out build output and node_modules.
    let ignored = read(&deploy().join("../.dockerignore"));
    for path in ["target", "ui/web/node_modules"] {
        assert!(
            ignored.lines().any(|l| l == path),
            ".dockerignore lists {path}"
        );
    }
    // What the image copies from the repository exists.
    let root = deploy().join("..");
    for copy in all("COPY").iter().filter(|c| !c.starts_with("--from")) {
        let mut parts: Vec<&str> = copy.split_whitespace().collect();
        parts.pop();
        for source in parts.iter().filter(|s| **s != ".") {
            assert!(
                root.join(source).exists(),
                "COPY {source}: not in the repository"
            );
        }
    }
}

#[test]
fn compose_starts_sextant_grafana_with_its_data_sources_and_the_example() {
    let compose = &yaml_documents(&deploy().join("compose.yaml"))[0];
    let services = compose["services"].as_object().unwrap();
    for name in ["sextant", "grafana", "simplebank"] {
        assert!(services.contains_key(name), "service {name}");
    }
    let sextant = &services["sextant"];
    assert!(
        deploy()
            .join("..")
            .join(sextant["build"]["dockerfile"].as_str().unwrap())
            .is_file()
    );
    for service in services.values() {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            if source.starts_with('.') {
                assert!(deploy().join(source).exists(), "volume {source}");
            }
        }
    }
    let sources = &yaml_documents(&deploy().join("grafana/datasources.yaml"))[0]["datasources"];
    let by_type = |t: &str| {
        sources
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["type"] == t)
            .unwrap_or_else(|| panic!("a {t} data source"))
            .clone()
    };
    assert_eq!(by_type("prometheus")["url"], "http://sextant:7070");
    assert_eq!(by_type("jaeger")["url"], "http://sextant:7070/jaeger");
}

#[test]
fn the_kubernetes_manifests_keep_data_probe_health_and_drop_privileges() {
    let manifests = yaml_documents(&deploy().join("kubernetes/sextant.yaml"));
    let kinds: Vec<&str> = manifests
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ConfigMap", "StatefulSet", "Service", "Service"]);
    let set = &manifests[1]["spec"];
    assert_eq!(
        set["volumeClaimTemplates"][0]["spec"]["accessModes"][0],
        "ReadWriteOnce"
    );
    let pod = &set["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.windows(2).any(|w| w == ["--bind", "0.0.0.0"]));
    assert!(
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/var/lib/sextant")
    );
    let statsd = &manifests[3]["spec"]["ports"][0];
    assert_eq!(
        (statsd["port"].as_u64(), statsd["protocol"].as_str()),
        (Some(8125), Some("UDP"))
    );
    let names: Vec<&str> = manifests[2]["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["http", "otlp-grpc", "otlp-http", "logstash"]);
}

#[test]
fn the_systemd_unit_is_hardened_and_systemd_accepts_it() {
    let path = deploy().join("systemd/sextant.service");
    let text = read(&path);
    for line in [
        "DynamicUser=yes",
        "StateDirectory=sextant",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} in {}",
            path.display()
        );
    }
    let analyze = Path::new("/usr/bin/systemd-analyze");
    assert!(
        analyze.exists(),
        "systemd-analyze is not installed: run scripts/setup-test-env"
    );
    // verify wants ExecStart's binary to exist: point it at the one built here.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("sextant.service");
    std::fs::write(
        &unit,
        text.replace(
            "/usr/local/bin/sextant",
            sextant_tests::sextant_bin().to_str().unwrap(),
        ),
    )
    .unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn the_shipper_snippets_point_at_sextant_and_promtool_accepts_remote_write() {
    let shippers = deploy().join("shippers");
    let out = Command::new("/usr/bin/promtool")
        .args(["check", "config"])
        .arg(shippers.join("prometheus-remote-write.yml"))
        .output()
        .expect("run promtool (scripts/setup-test-env installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let remote = &yaml_documents(&shippers.join("prometheus-remote-write.yml"))[0];
    assert_eq!(
        remote["remote_write"][0]["url"],
        "http://sextant:7070/api/v1/write"
    );

    let collector = &yaml_documents(&shippers.join("otel-collector.yaml"))[0];
    assert_eq!(
        collector["exporters"]["otlp/sextant"]["endpoint"],
        "sextant:4317"
    );
    assert_eq!(
        collector["exporters"]["otlphttp/sextant"]["endpoint"],
        "http://sextant:4318"
    );
    for pipeline in ["traces", "logs", "metrics"] {
        assert!(collector["service"]["pipelines"][pipeline]["exporters"].is_array());
    }
    let vector = &yaml_documents(&shippers.join("vector.yaml"))[0];
    assert_eq!(
        vector["sinks"]["sextant_logs"]["endpoints"][0],
        "http://sextant:7070"
    );
    assert_eq!(
        vector["sinks"]["sextant_metrics"]["endpoint"],
        "http://sextant:7070/api/v1/write"
    );

    // Fluent Bit's classic format: the es output's keys.
    let fluent_bit = read(&shippers.join("fluent-bit.conf"));
    let output = fluent_bit.split("[OUTPUT]").nth(1).expect("an [OUTPUT]");
    let key = |name: &str| {
        output
            .lines()
            .map(str::split_whitespace)
            .find_map(|mut words| {
                (words.next() == Some(name)).then(|| words.next().unwrap_or("").to_owned())
            })
            .unwrap_or_else(|| panic!("{name} in fluent-bit.conf's [OUTPUT]"))
    };
    assert_eq!(key("Name"), "es");
    assert_eq!(key("Port"), "7070");
    assert_eq!(key("Suppress_Type_Name"), "On");
    let fluentd = read(&shippers.join("fluentd.conf"));
    assert!(fluentd.contains("@type elasticsearch") && fluentd.contains("port 7070"));
}
