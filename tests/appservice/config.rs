//! The configuration file and `matrix-instagram init`: the committed example
//! and init's output load and validate, the registration matches the config,
//! and bad files give errors naming the file, position and key.

use std::path::{Path, PathBuf};
use std::process::Command;

use matrix_instagram::config::{
    init, Config, ConfigError, InitOptions, PermissionLevel, Registration, DEFAULT_DATABASE_URL,
};

/// No environment: tests must not depend on the caller's DATABASE_URL.
fn no_env(_: &str) -> Option<String> {
    None
}

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.yaml")
}

#[test]
fn example_yaml_is_the_generated_documented_config_and_validates() {
    let generated = Config::example().to_documented_yaml();
    let path = example_path();
    if std::env::var_os("MATRIX_INSTAGRAM_WRITE_EXAMPLE").is_some() {
        std::fs::write(&path, &generated).expect("writing config/example.yaml");
    }
    let committed = std::fs::read_to_string(&path).expect("config/example.yaml exists");
    assert!(
        committed == generated,
        "config/example.yaml is out of date with Config::example(); regenerate it with \
         MATRIX_INSTAGRAM_WRITE_EXAMPLE=1 cargo test --test appservice config::example"
    );
    let loaded = Config::load_with_env(&path, no_env).expect("example.yaml loads and validates");
    assert_eq!(loaded, Config::example());
}

#[test]
fn every_key_of_the_example_has_a_comment_above_it() {
    let text = Config::example().to_documented_yaml();
    let lines: Vec<&str> = text.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let is_key = !trimmed.is_empty() && !trimmed.starts_with('#') && trimmed.contains(':');
        // Permission entries are described by the comment above `permissions:`.
        let is_permission_entry = line.starts_with("  \"");
        if is_key && !is_permission_entry && index > 0 {
            assert!(
                lines[index - 1].trim_start().starts_with('#'),
                "no comment above line {}: {line}",
                index + 1
            );
        }
    }
}

#[test]
fn every_optional_value_survives_the_documented_yaml() {
    let mut config = Config::example();
    config.bot.avatar_url = Some("mxc://example.org/bot".to_owned());
    config.instagram.api_base_url = Some("http://127.0.0.1:9000/api".to_owned());
    config.instagram.web_base_url = Some("http://127.0.0.1:9000".to_owned());
    config.instagram.upload_base_url = Some("http://127.0.0.1:9001".to_owned());
    config
        .permissions
        .insert("@admin:example.org".to_owned(), PermissionLevel::Admin);
    config
        .permissions
        .insert("*".to_owned(), PermissionLevel::Block);
    config.logging.format = "json".to_owned();
    let text = config.to_documented_yaml();
    let loaded = Config::from_yaml(&text, Path::new("roundtrip.yaml"), no_env).unwrap();
    assert_eq!(loaded, config);
}

fn init_options(dir: &Path) -> InitOptions {
    InitOptions {
        config_path: dir.join("config.yaml"),
        registration_path: dir.join("registration.yaml"),
        homeserver_url: "http://127.0.0.1:8008".to_owned(),
        domain: "bridge.test".to_owned(),
        listen: "127.0.0.1:29331".parse().unwrap(),
        address: None,
        database_url: DEFAULT_DATABASE_URL.to_owned(),
        force: false,
    }
}

fn read_registration(path: &Path) -> (Registration, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let registration = serde_norway::from_str(&text).expect("registration parses");
    (registration, text)
}

#[test]
fn init_output_loads_validates_and_matches_its_registration() {
    let dir = tempfile::tempdir().unwrap();
    let options = init_options(dir.path());
    let written = init(&options).expect("init writes both files");

    let loaded = Config::load_with_env(&options.config_path, no_env).expect("config loads");
    assert_eq!(loaded, written);
    assert_eq!(loaded.homeserver.domain, "bridge.test");
    assert_eq!(loaded.database.url, "sqlite://matrix-instagram.db?mode=rwc");
    assert_eq!(loaded.appservice.listen.to_string(), "127.0.0.1:29331");
    assert_eq!(
        loaded.permission("@alice:bridge.test"),
        PermissionLevel::User
    );
    assert_eq!(
        loaded.permission("@alice:elsewhere.test"),
        PermissionLevel::Block
    );
    assert!(loaded.credential_key().is_ok());

    let (registration, text) = read_registration(&options.registration_path);
    assert_eq!(registration.id, loaded.appservice.id);
    assert_eq!(registration.url, "http://127.0.0.1:29331");
    assert_eq!(registration.as_token, loaded.appservice.as_token);
    assert_eq!(registration.hs_token, loaded.appservice.hs_token);
    assert_eq!(registration.as_token.len(), 64);
    assert_ne!(registration.as_token, registration.hs_token);
    assert_eq!(registration.sender_localpart, "instagrambot");
    assert!(!registration.rate_limited);
    assert!(registration.receive_ephemeral);
    assert!(!text.contains("push_ephemeral"), "{text}");
    assert!(registration.namespaces.aliases.is_empty());

    let users: Vec<regex::Regex> = registration
        .namespaces
        .users
        .iter()
        .map(|namespace| {
            assert!(namespace.exclusive);
            regex::Regex::new(&namespace.regex).unwrap()
        })
        .collect();
    let claimed = |mxid: &str| users.iter().any(|regex| regex.is_match(mxid));
    assert!(claimed("@instagrambot:bridge.test"));
    assert!(claimed(&loaded.puppet_mxid("17841400000000001")));
    assert!(!claimed("@alice:bridge.test"));
    assert!(!claimed("@instagram_1:bridgeXtest"));
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = init_options(dir.path());
    std::fs::write(&options.registration_path, "keep me").unwrap();

    let error = init(&options).expect_err("registration exists");
    assert!(matches!(error, ConfigError::Exists { .. }), "{error}");
    assert!(error.to_string().contains("--force"), "{error}");
    assert!(
        !options.config_path.exists(),
        "nothing is written on refusal"
    );
    assert_eq!(
        std::fs::read_to_string(&options.registration_path).unwrap(),
        "keep me"
    );

    options.force = true;
    let written = init(&options).expect("--force overwrites");
    let (registration, _) = read_registration(&options.registration_path);
    assert_eq!(registration.as_token, written.appservice.as_token);
}

#[test]
fn init_command_writes_files_and_prints_next_steps() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_matrix-instagram"))
            .current_dir(dir.path())
            .args(["-c", "bridge.yaml", "init", "--domain", "cli.test"])
            .args(["--listen", "127.0.0.1:29444", "--registration", "as.yaml"])
            .output()
            .expect("running matrix-instagram init")
    };
    let first = run();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout.contains("app_service_config_files"), "{stdout}");
    assert!(stdout.contains("as.yaml"), "{stdout}");
    assert!(
        !stdout.contains("connector spec"),
        "the built-in spec needs no file: {stdout}"
    );
    let config = Config::load_with_env(&dir.path().join("bridge.yaml"), no_env).unwrap();
    assert_eq!(
        config.instagram.connector, None,
        "init uses the built-in spec"
    );
    assert_eq!(config.appservice.address, "http://127.0.0.1:29444");
    assert!(
        !stdout.contains(&config.appservice.as_token),
        "tokens are not printed"
    );

    let second = run();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already exists"));
}

fn parse_error(text: &str) -> String {
    Config::from_yaml(text, Path::new("/etc/bridge/config.yaml"), no_env)
        .expect_err("invalid config")
        .to_string()
}

#[test]
fn unknown_key_error_names_file_line_and_key() {
    let text = Config::example()
        .to_documented_yaml()
        .replace("  max_body_bytes:", "  max_body_byte:");
    let message = parse_error(&text);
    assert!(message.contains("/etc/bridge/config.yaml"), "{message}");
    assert!(message.contains("appservice"), "{message}");
    assert!(
        message.contains("unknown field `max_body_byte`"),
        "{message}"
    );
    let line = text
        .lines()
        .position(|line| line.contains("max_body_byte:"))
        .unwrap()
        + 1;
    assert!(message.contains(&format!("line {line}")), "{message}");
}

#[test]
fn wrong_type_error_names_the_key() {
    let text = Config::example()
        .to_documented_yaml()
        .replace("listen: \"127.0.0.1:29330\"", "listen: [1, 2]");
    let message = parse_error(&text);
    assert!(message.contains("appservice.listen"), "{message}");
    let line = text
        .lines()
        .position(|line| line.contains("listen: [1, 2]"))
        .unwrap()
        + 1;
    assert!(message.contains(&format!("line {line}")), "{message}");
}

#[test]
fn invalid_values_are_all_listed_by_key() {
    let text = Config::example()
        .to_documented_yaml()
        .replace("\"instagram_{id}\"", "\"instagram_\"")
        .replace("url: \"https://matrix.example.org\"", "url: \"not a url\"")
        .replace("writes_per_minute: 20", "writes_per_minute: 0")
        .replace("max_cool_down_ms: 14400000", "max_cool_down_ms: 1000");
    let message = parse_error(&text);
    assert!(
        message.starts_with("invalid configuration in /etc/bridge/config.yaml:"),
        "{message}"
    );
    assert!(message.contains("\n  - homeserver.url: "), "{message}");
    assert!(
        message.contains("\n  - puppets.localpart_template: must contain {id}"),
        "{message}"
    );
    assert!(
        message.contains("\n  - safety.writes_per_minute: must be more than 0"),
        "{message}"
    );
    assert!(
        message.contains("\n  - safety.max_cool_down_ms: must be at least safety.cool_down_ms"),
        "{message}"
    );
}

#[test]
fn missing_file_error_names_the_path() {
    let error = Config::load(Path::new("/nonexistent/matrix-instagram.yaml")).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(error
        .to_string()
        .starts_with("cannot read configuration file /nonexistent/matrix-instagram.yaml"));
}

#[test]
fn environment_overrides_database_url_and_key() {
    let text = Config::example().to_documented_yaml();
    let key = matrix_instagram::secrets::CredentialKey::generate().to_base64();
    let env = |name: &str| match name {
        "DATABASE_URL" => Some("postgres://bridge@db.internal/ig".to_owned()),
        "MATRIX_INSTAGRAM_KEY" => Some(key.clone()),
        _ => None,
    };
    let config = Config::from_yaml(&text, Path::new("config.yaml"), env).unwrap();
    assert_eq!(config.database.url, "postgres://bridge@db.internal/ig");
    assert_eq!(config.encryption.key.as_deref(), Some(key.as_str()));

    let bad_key = |name: &str| (name == "MATRIX_INSTAGRAM_KEY").then(|| "dG9vIHNob3J0".to_owned());
    let message = Config::from_yaml(&text, Path::new("config.yaml"), bad_key)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("encryption.key: the encryption key must decode to 32 bytes"),
        "{message}"
    );
    assert!(!message.contains("dG9vIHNob3J0"), "{message}");
}
