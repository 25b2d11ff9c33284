//! The deploy/ files, checked as far as this machine allows: the compose file
//! parsed and matched against the config its README's `init` command writes
//! (homeserver, listen address, database, shared registration), the
//! Dockerfile's paths and ports, and the systemd unit's settings (verified by
//! `systemd-analyze verify` where it exists).

use std::path::{Path, PathBuf};
use std::process::Command;

use matrix_instagram::config::Config;
use serde_norway::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(deploy_dir().join(name))
        .unwrap_or_else(|e| panic!("deploy/{name}: {e}"))
}

/// The one line of deploy/README.md that starts with `prefix`.
fn readme_line(prefix: &str) -> String {
    let readme = read("README.md");
    let lines: Vec<&str> = readme
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with(prefix))
        .collect();
    assert_eq!(lines.len(), 1, "one `{prefix}` line in deploy/README.md");
    lines[0].to_owned()
}

fn compose() -> Value {
    serde_norway::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML")
}

/// `host:container` volume entries of a service, as (host, container).
fn volumes(service: &Value) -> Vec<(String, String)> {
    service["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .map(|volume| {
            let text = volume.as_str().expect("short volume syntax");
            let mut parts = text.split(':');
            let host = parts.next().unwrap().to_owned();
            let container = parts.next().expect("host:container").to_owned();
            (host, container)
        })
        .collect()
}

/// The README's `docker run ... matrix-instagram init ...` line.
fn readme_init_line() -> String {
    let readme = read("README.md");
    let lines: Vec<&str> = readme
        .lines()
        .filter(|line| line.starts_with("docker run") && line.contains(" matrix-instagram init "))
        .collect();
    assert_eq!(lines.len(), 1, "one init line in deploy/README.md");
    lines[0].to_owned()
}

/// Runs the README's `init` in a temp dir standing for the container's /data.
fn config_from_readme_init(data: &Path) -> Config {
    let line = readme_init_line();
    let args = shlex::split(line.split_once(" init ").expect("init args").1).expect("shell words");
    let data_text = data.display().to_string();
    let args: Vec<String> = args
        .iter()
        .map(|arg| arg.replace("/data/", &format!("{data_text}/")))
        .collect();
    let output = Command::new(env!("CARGO_BIN_EXE_matrix-instagram"))
        .arg("-c")
        .arg(data.join("config.yaml"))
        .arg("init")
        .args(&args)
        .output()
        .expect("running init");
    assert!(output.status.success(), "{output:?}");
    assert!(data.join("registration.yaml").is_file());
    Config::load_with_env(&data.join("config.yaml"), |_| None).expect("the config loads")
}

#[test]
fn compose_services_match_the_config_the_readme_writes() {
    let compose = compose();
    let services = &compose["services"];
    let (postgres, synapse, bridge) = (
        &services["postgres"],
        &services["synapse"],
        &services["bridge"],
    );
    for (name, service) in [
        ("postgres", postgres),
        ("synapse", synapse),
        ("bridge", bridge),
    ] {
        assert!(service.is_mapping(), "service {name} in docker-compose.yml");
    }
    let data = tempfile::tempdir().unwrap();
    let config = config_from_readme_init(data.path());

    // The bridge reaches Synapse by its service name, on a port Synapse serves.
    let homeserver = url::Url::parse(&config.homeserver.url).unwrap();
    assert_eq!(homeserver.host_str(), Some("synapse"));
    let synapse_ports: Vec<&str> = synapse["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|port| port.as_str().unwrap().rsplit(':').next().unwrap())
        .collect();
    assert!(
        synapse_ports.contains(&homeserver.port().unwrap().to_string().as_str()),
        "{synapse_ports:?}"
    );

    // Synapse reaches the bridge by its service name, on the port it listens on.
    let listen = config.appservice.listen;
    assert!(listen.ip().is_unspecified(), "inside a container: {listen}");
    let exposed: Vec<String> = bridge["expose"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|port| port.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(exposed, [listen.port().to_string()]);
    assert_eq!(
        config.appservice.address,
        format!("http://bridge:{}", listen.port())
    );
    assert!(read("Dockerfile").contains(&format!("EXPOSE {}", listen.port())));

    // The database: the postgres service, its user and password, a database its init creates.
    let database = url::Url::parse(&config.database.url).unwrap();
    let env = &postgres["environment"];
    assert_eq!(database.host_str(), Some("postgres"));
    assert_eq!(database.username(), env["POSTGRES_USER"].as_str().unwrap());
    assert_eq!(database.password(), env["POSTGRES_PASSWORD"].as_str());
    let database_name = database.path().trim_start_matches('/');
    assert!(
        read("postgres-init.sql").contains(&format!("CREATE DATABASE {database_name} ")),
        "postgres-init.sql creates {database_name}"
    );
    assert!(volumes(postgres).contains(&(
        "./postgres-init.sql".to_owned(),
        "/docker-entrypoint-initdb.d/bridge.sql".to_owned()
    )));

    // One host folder is the bridge's /data and Synapse's /bridge: the
    // registration init writes there is the one homeserver.yaml loads.
    let bridge_data = volumes(bridge)
        .into_iter()
        .find(|(_, container)| container == "/data")
        .map(|(host, _)| host)
        .expect("the bridge's /data volume");
    let (_, synapse_view) = volumes(synapse)
        .into_iter()
        .find(|(host, _)| *host == bridge_data)
        .expect("Synapse mounts the bridge's folder");
    let readme = read("README.md");
    assert!(
        readme.contains(&format!("- {synapse_view}/registration.yaml")),
        "homeserver.yaml loads {synapse_view}/registration.yaml"
    );
    assert!(
        readme_init_line().contains(&format!(
            "\"$PWD/{}:/data\"",
            bridge_data.trim_start_matches("./")
        )),
        "init writes into the bridge's folder"
    );
}

#[test]
fn dockerfile_and_compose_name_the_same_image_and_paths() {
    let dockerfile = read("Dockerfile");
    let compose = compose();
    let bridge = &compose["services"]["bridge"];
    let image = bridge["image"].as_str().unwrap();
    assert_eq!(
        readme_line("docker build"),
        format!(
            "docker build -f deploy/Dockerfile -t {image} --build-arg \
             MATRIX_INSTAGRAM_GIT_COMMIT=\"$(git rev-parse --short HEAD)\" ."
        )
    );
    assert_eq!(bridge["build"]["dockerfile"], "deploy/Dockerfile");
    assert_eq!(bridge["build"]["context"], "..");
    assert!(dockerfile.contains("\"-c\", \"/data/config.yaml\""));
    assert!(dockerfile.contains("VOLUME /data"));
    let user = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix("USER "))
        .expect("a USER line");
    assert_ne!(user.trim(), "root");
    // The runner beside the binary, where the bridge looks for it.
    assert!(dockerfile.contains("/opt/matrix-instagram/matrix-instagram"));
    assert!(dockerfile.contains("COPY --from=runner /runner /opt/matrix-instagram/scripts"));
    // The context's exclusions keep the build output out, not the sources.
    let ignored = read("Dockerfile.dockerignore");
    let ignored: Vec<&str> = ignored
        .lines()
        .filter(|line| !line.starts_with('#'))
        .collect();
    assert!(ignored.contains(&"target"), "{ignored:?}");
    for needed in [
        "src",
        "connectors",
        "migrations",
        "scripts",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        assert!(
            !ignored.contains(&needed),
            "{needed} is needed by the build"
        );
    }
    // Every file copied from the repository exists.
    for line in dockerfile
        .lines()
        .filter(|line| line.starts_with("COPY scripts/"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for file in &words[1..words.len() - 1] {
            assert!(
                Path::new(env!("CARGO_MANIFEST_DIR")).join(file).is_file(),
                "{file} in {line}"
            );
        }
    }
}

#[test]
fn systemd_unit_is_hardened_and_verifies() {
    let unit = read("matrix-instagram.service");
    let settings: Vec<(&str, &str)> = unit
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .collect();
    let value = |key: &str| {
        settings
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| *value)
            .unwrap_or_else(|| panic!("{key}= in the unit"))
    };
    assert_eq!(value("User"), "matrix-instagram");
    assert_eq!(value("ProtectSystem"), "strict");
    assert_eq!(value("PrivateTmp"), "yes");
    assert_eq!(value("NoNewPrivileges"), "yes");
    assert_eq!(value("Restart"), "on-failure");
    assert_eq!(
        value("ExecStart"),
        "/opt/matrix-instagram/matrix-instagram -c /etc/matrix-instagram/config.yaml run"
    );

    let Some(analyze) = which("systemd-analyze") else {
        eprintln!(
            "systemd-analyze is not installed: the unit's settings were checked, not verified"
        );
        return;
    };
    // Verified with ExecStart pointing at the binary built here.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("matrix-instagram.service");
    std::fs::write(
        &copy,
        unit.replace(
            "ExecStart=/opt/matrix-instagram/matrix-instagram",
            &format!("ExecStart={}", env!("CARGO_BIN_EXE_matrix-instagram")),
        ),
    )
    .unwrap();
    let output = Command::new(analyze)
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("running systemd-analyze verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(
        !text.contains("matrix-instagram.service"),
        "systemd-analyze has remarks on the unit: {text}"
    );
}

/// The path of `program` on PATH.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}
