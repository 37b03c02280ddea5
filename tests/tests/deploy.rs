//! The files under `deploy/`, checked mechanically (no Docker engine or
//! cluster runs here): every YAML parses; every Sextant config in them
//! (the example, the compose files', the Kubernetes ConfigMaps', the
//! cluster's rendered per pod) passes `sextant check-config`; the
//! Dockerfile, compose files, manifests and systemd unit have what running
//! in production needs; `systemd-analyze verify`, `promtool check config`
//! and `nats-server -t` accept what they can check; the shipper snippets
//! point at Sextant's ports; the cluster's nodes name the NATS servers and
//! bucket that run beside them, and themselves.

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
        "7070/tcp",
        "4317/tcp",
        "4318/tcp",
        "8125/udp",
        "8125/tcp",
        "5959/tcp",
        "5959/udp",
        "5514/tcp",
        "5514/udp",
        "24224/tcp",
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
    assert_eq!(by_type("loki")["url"], "http://sextant:7070");
    let tempo = by_type("tempo");
    assert_eq!(tempo["url"], "http://sextant:7070");
    assert_eq!(
        tempo["jsonData"]["serviceMap"]["datasourceUid"],
        by_type("prometheus")["uid"]
    );
    assert_eq!(
        tempo["jsonData"]["tracesToLogsV2"]["datasourceUid"],
        by_type("loki")["uid"]
    );
    assert_eq!(
        by_type("prometheus")["jsonData"]["exemplarTraceIdDestinations"][0],
        serde_json::json!({"name": "trace_id", "datasourceUid": tempo["uid"]})
    );
    let alertmanager = by_type("alertmanager");
    assert_eq!(alertmanager["jsonData"]["implementation"], "prometheus");
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
    assert_eq!(
        names,
        [
            "http",
            "otlp-grpc",
            "otlp-http",
            "logstash",
            "syslog",
            "forward"
        ]
    );
    // Every Service port names a container port of the same protocol.
    let container_ports = container["ports"].as_array().unwrap();
    for service in [&manifests[2], &manifests[3]] {
        for port in service["spec"]["ports"].as_array().unwrap() {
            assert!(
                container_ports
                    .iter()
                    .any(|c| c["name"] == port["targetPort"] && c["protocol"] == port["protocol"]),
                "{port}"
            );
        }
    }
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

/// The part of a NATS server config inside `name { ... }` (the files here
/// nest no blocks within blocks).
fn nats_block<'a>(conf: &'a str, name: &str) -> &'a str {
    let start = conf
        .lines()
        .find(|l| l.trim() == format!("{name} {{"))
        .and_then(|l| conf.find(l))
        .unwrap_or_else(|| panic!("no `{name} {{` block in:\n{conf}"));
    let body = &conf[start..];
    &body[body.find('{').unwrap() + 1..body.find('}').unwrap()]
}

/// The value of the first `key: value` line of a NATS config (or block).
fn nats_value<'a>(conf: &'a str, key: &str) -> &'a str {
    conf.lines()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no `{key}:` in:\n{conf}"))
        .trim()
}

/// The port of a `host:port` or `scheme://host:port` address.
fn port_of(address: &str) -> &str {
    address.rsplit(':').next().unwrap()
}

/// The `cluster { routes: [...] }` of a NATS config, sorted.
fn nats_routes(conf: &str) -> Vec<String> {
    let cluster = nats_block(conf, "cluster");
    let list = &cluster[cluster.find("routes: [").expect("routes") + "routes: [".len()..];
    let mut routes: Vec<String> = list[..list.find(']').unwrap()]
        .split([',', ' ', '\n'])
        .map(|r| r.trim().trim_matches('"'))
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    routes.sort();
    routes
}

/// `nats-server -t`, the server's own config check (the test venv's 2.x
/// binary), with `POD_NAME` set for configs that name it.
fn nats_server_accepts(path: &Path, pod_name: &str) {
    let bin = sextant_tests::python().with_file_name("nats-server");
    let out = Command::new(&bin)
        .arg("-t")
        .arg("-c")
        .arg(path)
        .env("POD_NAME", pod_name)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "nats-server -t -c {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A list of strings.
fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

#[test]
fn the_cluster_compose_file_joins_three_nodes_over_three_nats_servers_and_one_bucket() {
    let dir = deploy().join("cluster");
    let compose = &yaml_documents(&dir.join("compose.yaml"))[0];
    let services = compose["services"].as_object().unwrap();
    let with_image = |prefix: &str| -> Vec<&str> {
        services
            .iter()
            .filter(|(_, s)| s["image"].as_str().is_some_and(|i| i.starts_with(prefix)))
            .map(|(name, _)| name.as_str())
            .collect()
    };
    // The host file a service mounts at `target`, checked to exist.
    let mounted = |service: &str, target: &str| -> PathBuf {
        let source = strings(&services[service]["volumes"])
            .into_iter()
            .find_map(|v| {
                v.strip_suffix(":ro")
                    .unwrap_or(v)
                    .strip_suffix(&format!(":{target}"))
            })
            .unwrap_or_else(|| panic!("{service} mounts nothing at {target}"));
        let path = dir.join(source);
        assert!(path.is_file(), "{service}'s {source}");
        path
    };
    let condition =
        |service: &str, on: &str| services[service]["depends_on"][on]["condition"].clone();

    // Three NATS servers, each with JetStream on its volume and routes to
    // the other two at their cluster ports.
    let nats = with_image("nats:2.10");
    assert_eq!(nats, ["nats-0", "nats-1", "nats-2"]);
    let confs: Vec<String> = nats
        .iter()
        .map(|name| {
            let path = mounted(name, "/etc/nats/nats.conf");
            nats_server_accepts(&path, name);
            read(&path)
        })
        .collect();
    for (name, conf) in nats.iter().zip(&confs) {
        assert_eq!(nats_value(conf, "server_name"), *name);
        let store = nats_value(nats_block(conf, "jetstream"), "store_dir");
        assert!(
            strings(&services[*name]["volumes"])
                .iter()
                .any(|v| !v.starts_with('.') && store.starts_with(v.split(':').nth(1).unwrap())),
            "{name}'s JetStream store_dir {store} is on a volume"
        );
        let others: Vec<String> = nats
            .iter()
            .zip(&confs)
            .filter(|(other, _)| other != &name)
            .map(|(other, conf)| {
                let port = port_of(nats_value(nats_block(conf, "cluster"), "listen"));
                format!("nats-route://{other}:{port}")
            })
            .collect();
        assert_eq!(nats_routes(conf), others, "{name}'s routes");
        let health = strings(&services[*name]["healthcheck"]["test"]).join(" ");
        let monitor = port_of(nats_value(conf, "http"));
        assert!(health.contains(&format!(":{monitor}/healthz")), "{health}");
    }
    let nats_urls: Vec<String> = nats
        .iter()
        .zip(&confs)
        .map(|(name, conf)| format!("nats://{name}:{}", port_of(nats_value(conf, "listen"))))
        .collect();

    // SeaweedFS, whose S3 identities are the mounted -s3.config, and the
    // one-shot service that creates the bucket once it is healthy.
    assert_eq!(
        with_image("chrislusf/seaweedfs:"),
        ["seaweedfs", "seaweedfs-init"]
    );
    let s3_config = strings(&services["seaweedfs"]["command"])
        .into_iter()
        .find_map(|a| a.strip_prefix("-s3.config="))
        .expect("seaweedfs -s3.config=");
    let identities: Value = serde_json::from_str(&read(&mounted("seaweedfs", s3_config))).unwrap();
    assert_eq!(condition("seaweedfs-init", "seaweedfs"), "service_healthy");
    let init = strings(&services["seaweedfs-init"]["command"]).join(" ");

    // Three nodes from the repository's Dockerfile, each with its config.
    let sextants: Vec<&str> = services
        .iter()
        .filter(|(_, s)| s.get("build").is_some())
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(sextants, ["sextant-0", "sextant-1", "sextant-2"]);
    let mut node_ids = Vec::new();
    for name in sextants {
        let service = &services[name];
        let build = &service["build"];
        assert!(
            dir.join(build["context"].as_str().unwrap())
                .join(build["dockerfile"].as_str().unwrap())
                .is_file()
        );
        let command = strings(&service["command"]);
        assert!(command.windows(2).any(|w| w == ["--bind", "0.0.0.0"]));
        let config_path = command.windows(2).find(|w| w[0] == "--config").unwrap()[1];
        let config_file = mounted(name, config_path);
        check_config(&config_file);
        let config = &yaml_documents(&config_file)[0];
        let cluster = &config["cluster"];
        node_ids.push(cluster["node_id"].as_str().unwrap().to_owned());
        assert_eq!(cluster["advertise"], format!("{name}:7070"));
        assert_eq!(strings(&cluster["nats"]), nats_urls, "{name}'s nats");

        let store = &config["storage"]["object_store"];
        let (host, port) = store["endpoint"]
            .as_str()
            .unwrap()
            .strip_prefix("http://")
            .unwrap()
            .split_once(':')
            .unwrap();
        assert_eq!(host, "seaweedfs");
        assert!(
            strings(&services[host]["healthcheck"]["test"])
                .join(" ")
                .contains(&format!(":{port}/")),
            "{name}'s object store is SeaweedFS's S3 port"
        );
        let bucket = store["url"].as_str().unwrap()["s3://".len()..]
            .split('/')
            .next()
            .unwrap();
        assert!(
            init.contains(&format!("s3.bucket.create -name {bucket}")),
            "{init}"
        );
        let identity = identities["identities"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| {
                i["credentials"].as_array().unwrap().iter().any(|c| {
                    c["accessKey"] == store["access_key_id"]
                        && c["secretKey"] == store["secret_access_key"]
                })
            })
            .unwrap_or_else(|| panic!("{name}'s S3 keys are an identity of {s3_config}"));
        assert!(strings(&identity["actions"]).contains(&"Write"));

        let health = strings(&service["healthcheck"]["test"]).join(" ");
        assert!(health.contains("http://127.0.0.1:7070/-/ready"), "{health}");
        for server in &nats {
            assert_eq!(
                condition(name, server),
                "service_healthy",
                "{name} on {server}"
            );
        }
        assert_eq!(
            condition(name, "seaweedfs-init"),
            "service_completed_successfully"
        );
    }
    node_ids.sort();
    node_ids.dedup();
    assert_eq!(node_ids.len(), 3, "distinct node ids: {node_ids:?}");
}

/// What the Kubernetes cluster's StatefulSets share: pods started together
/// (a server or node waits for its peers), named under a headless Service
/// before they are ready, data on a PVC, no privileges. Returns the set's
/// pod spec.
fn check_cluster_set<'a>(set: &'a Value, headless: &Value) -> &'a Value {
    let name = &set["metadata"]["name"];
    let spec = &set["spec"];
    assert_eq!(spec["replicas"], 3, "{name}");
    assert_eq!(spec["podManagementPolicy"], "Parallel", "{name}");
    assert_eq!(spec["serviceName"], headless["metadata"]["name"], "{name}");
    assert_eq!(headless["spec"]["clusterIP"], "None", "{name}");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true, "{name}");
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
    let claim = &spec["volumeClaimTemplates"][0];
    assert_eq!(claim["spec"]["accessModes"][0], "ReadWriteOnce", "{name}");
    let init = pod["initContainers"].as_array().into_iter().flatten();
    for container in init.chain(pod["containers"].as_array().unwrap()) {
        let security = &container["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
    }
    let container = &pod["containers"][0];
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == claim["metadata"]["name"]),
        "{name} mounts its PVC"
    );
    pod
}

/// Whether a container's `POD_NAME` is its pod's name.
fn has_pod_name(container: &Value) -> bool {
    container["env"].as_array().into_iter().flatten().any(|e| {
        e["name"] == "POD_NAME" && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    })
}

/// Where a container mounts the volume `name`.
fn mount_path<'a>(container: &'a Value, name: &str) -> &'a str {
    container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["mountPath"].as_str())
        .unwrap_or_else(|| panic!("{} mounts no {name}", container["name"]))
}

#[test]
fn the_kubernetes_cluster_gives_each_pod_its_node_id_and_routes_nats_by_pod_name() {
    let dir = deploy().join("kubernetes/cluster");
    let kinds = |manifests: &[Value]| -> Vec<String> {
        manifests
            .iter()
            .map(|m| m["kind"].as_str().unwrap().to_owned())
            .collect()
    };

    // NATS: one config for the three servers, its name from POD_NAME, its
    // routes the three pods' names under the headless Service.
    let nats = yaml_documents(&dir.join("nats.yaml"));
    assert_eq!(kinds(&nats), ["ConfigMap", "Service", "StatefulSet"]);
    let (nats_config, nats_service, nats_set) = (&nats[0], &nats[1], &nats[2]);
    let pod = check_cluster_set(nats_set, nats_service);
    let container = &pod["containers"][0];
    assert!(has_pod_name(container));
    let conf = nats_config["data"]["nats.conf"].as_str().unwrap();
    let args = strings(&container["args"]);
    let config_volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["configMap"]["name"] == nats_config["metadata"]["name"])
        .unwrap();
    assert_eq!(
        args,
        [
            "--config",
            &format!(
                "{}/nats.conf",
                mount_path(container, config_volume["name"].as_str().unwrap())
            )
        ]
    );
    let temp = tempfile::tempdir().unwrap();
    std::fs::write(temp.path().join("nats.conf"), conf).unwrap();
    nats_server_accepts(&temp.path().join("nats.conf"), "nats-0");
    assert_eq!(nats_value(conf, "server_name"), "$POD_NAME");
    let store = nats_value(nats_block(conf, "jetstream"), "store_dir");
    let claim = nats_set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
        .as_str()
        .unwrap();
    assert!(store.starts_with(mount_path(container, claim)), "{store}");
    let (set_name, service_name) = (
        nats_set["metadata"]["name"].as_str().unwrap(),
        nats_service["metadata"]["name"].as_str().unwrap(),
    );
    let route_port = port_of(nats_value(nats_block(conf, "cluster"), "listen"));
    let pods: Vec<String> = (0..3)
        .map(|i| format!("{set_name}-{i}.{service_name}"))
        .collect();
    assert_eq!(
        nats_routes(conf),
        pods.iter()
            .map(|p| format!("nats-route://{p}:{route_port}"))
            .collect::<Vec<_>>()
    );
    let client_port = port_of(nats_value(conf, "listen"));
    let nats_urls: Vec<String> = pods
        .iter()
        .map(|p| format!("nats://{p}:{client_port}"))
        .collect();

    // Sextant: the init container renders the ConfigMap's template with the
    // pod's name; run its command here as the pod would, with the volumes
    // under a temporary directory.
    let sextant = yaml_documents(&dir.join("sextant.yaml"));
    assert_eq!(
        kinds(&sextant),
        ["ConfigMap", "StatefulSet", "Service", "Service"]
    );
    let (template, set) = (&sextant[0], &sextant[1]);
    let headless = sextant[2..]
        .iter()
        .find(|s| s["spec"]["clusterIP"] == "None")
        .expect("a headless Service");
    let pod = check_cluster_set(set, headless);
    let container = &pod["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    let http = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http")
        .unwrap()["containerPort"]
        .clone();
    for (variable, key) in [
        ("AWS_ACCESS_KEY_ID", "access_key_id"),
        ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
    ] {
        let env = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == variable)
            .unwrap_or_else(|| panic!("{variable}"));
        assert_eq!(env["valueFrom"]["secretKeyRef"]["key"], key);
    }
    let init = &pod["initContainers"][0];
    assert!(has_pod_name(init));
    let command = strings(&init["command"]);
    assert_eq!(command[..2], ["sh", "-c"]);
    let args = strings(&container["args"]);
    assert!(args.windows(2).any(|w| w == ["--bind", "0.0.0.0"]));
    let config_path = args.windows(2).find(|w| w[0] == "--config").unwrap()[1];
    let set_name = set["metadata"]["name"].as_str().unwrap();
    let headless_name = headless["metadata"]["name"].as_str().unwrap();
    for i in 0..3 {
        let pod_name = format!("{set_name}-{i}");
        let root = tempfile::tempdir().unwrap();
        // The pod's volumes as directories, the template's files in its own.
        for volume in pod["volumes"].as_array().unwrap() {
            let path = root.path().join(volume["name"].as_str().unwrap());
            std::fs::create_dir(&path).unwrap();
            if volume["configMap"]["name"] == template["metadata"]["name"] {
                for (file, text) in template["data"].as_object().unwrap() {
                    std::fs::write(path.join(file), text.as_str().unwrap()).unwrap();
                }
            }
        }
        // A container's command or path with its mount paths as those
        // directories, longest first: /etc/x-template is not /etc/x.
        let local = |container: &Value, text: &str| {
            let mut mounts: Vec<(&str, &str)> = container["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["mountPath"].as_str().unwrap(),
                        m["name"].as_str().unwrap(),
                    )
                })
                .collect();
            mounts.sort_by_key(|(at, _)| std::cmp::Reverse(at.len()));
            mounts.iter().fold(text.to_owned(), |text, (at, name)| {
                text.replace(at, root.path().join(name).to_str().unwrap())
            })
        };
        let out = Command::new("sh")
            .arg("-c")
            .arg(local(init, command[2]))
            .env("POD_NAME", &pod_name)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the init container: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rendered = PathBuf::from(local(container, config_path));
        check_config(&rendered);
        let config = &yaml_documents(&rendered)[0];
        let cluster = &config["cluster"];
        assert_eq!(cluster["node_id"], pod_name.as_str());
        assert_eq!(
            cluster["advertise"],
            format!("{pod_name}.{headless_name}:{http}")
        );
        assert_eq!(strings(&cluster["nats"]), nats_urls);
        // The keys come from the Secret, not the file.
        let store = &config["storage"]["object_store"];
        assert!(store["access_key_id"].is_null() && store["secret_access_key"].is_null());
    }
}
