//! The bot's command framework: a registry of commands (name, usage,
//! description, argument count, handler), shell-like argument parsing, and
//! the built-in `help`, `ping` and `version`. Later features register more
//! commands (`login`, `logout`, `sync`, the chat and inbox commands of the
//! submodules) with `CommandRegistry::register`.

pub mod chat;
pub mod inbox;
pub mod new_chat;

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use indexmap::IndexMap;
use ruma::{RoomId, UserId};

use super::Bridge;
use crate::config::PermissionLevel;
use crate::store::LoginRecord;

/// What a command runs with.
pub struct CommandContext<'a> {
    /// The whole bridge: configuration, store, homeserver client, commands.
    pub bridge: &'a Bridge,
    pub sender: &'a UserId,
    pub room_id: &'a RoomId,
    pub permission: PermissionLevel,
    /// Whether the command came from the sender's management room.
    pub in_management_room: bool,
}

impl CommandContext<'_> {
    /// The prefix commands need outside the management room (`!ig`).
    pub fn prefix(&self) -> &str {
        &self.bridge.config.bot.command_prefix
    }

    /// How the user types `command` in the room they wrote from.
    pub fn invocation(&self, command: &str) -> String {
        if self.in_management_room {
            command.to_owned()
        } else {
            format!("{} {command}", self.prefix())
        }
    }

    /// The sender's stored Instagram login, if any; a database failure
    /// becomes a reply-ready error.
    pub async fn sender_login(&self) -> Result<Option<LoginRecord>, CommandError> {
        self.bridge
            .store
            .login(self.sender.as_str())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot read the login");
                CommandError::Failed("the bridge's database is unavailable".to_owned())
            })
    }
}

/// A reply from the bot: plain text, and the same as simple HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub plain: String,
    pub html: String,
}

impl Reply {
    /// Builds a reply from plain text in which `backticks` mark code; the
    /// HTML version escapes the text, renders code spans and line breaks.
    pub fn text(plain: impl Into<String>) -> Reply {
        let plain = plain.into();
        let mut html = String::with_capacity(plain.len() + 16);
        for (index, segment) in plain.split('`').enumerate() {
            let escaped = escape_html(segment).replace('\n', "<br>");
            if index % 2 == 1 {
                html.push_str("<code>");
                html.push_str(&escaped);
                html.push_str("</code>");
            } else {
                html.push_str(&escaped);
            }
        }
        Reply { plain, html }
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Why a command did not succeed; the text is shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The arguments do not fit the command's usage.
    #[error("{0}")]
    Usage(String),
    /// The command ran and failed.
    #[error("{0}")]
    Failed(String),
}

/// The code behind a command.
#[async_trait]
pub trait CommandHandler: Send + Sync {
    async fn run(&self, ctx: &CommandContext<'_>, args: &[String]) -> Result<Reply, CommandError>;
}

/// One command the bot understands.
pub struct Command {
    pub name: &'static str,
    /// Arguments as shown in help, e.g. `<username>`; empty if none.
    pub usage: &'static str,
    pub description: &'static str,
    pub min_args: usize,
    pub max_args: usize,
    /// The lowest permission level allowed to run it.
    pub required: PermissionLevel,
    pub handler: Arc<dyn CommandHandler>,
}

impl Command {
    fn usage_line(&self) -> String {
        if self.usage.is_empty() {
            self.name.to_owned()
        } else {
            format!("{} {}", self.name, self.usage)
        }
    }
}

/// A line of user input that could not be split into arguments.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot parse the command: unbalanced quotes or a trailing backslash")]
pub struct ParseError;

/// Splits a command line with shell-like quoting (`'...'`, `"..."`, `\`).
pub fn split_arguments(line: &str) -> Result<Vec<String>, ParseError> {
    shlex::split(line).ok_or(ParseError)
}

/// All commands, in the order `help` lists them.
#[derive(Default)]
pub struct CommandRegistry {
    commands: IndexMap<&'static str, Command>,
    /// Commands that wait on Instagram: they run in a task of their own, so
    /// the homeserver's transactions go on meanwhile.
    background: HashSet<&'static str>,
}

impl CommandRegistry {
    /// The registry with the built-in commands.
    pub fn with_builtins() -> CommandRegistry {
        let mut registry = CommandRegistry::default();
        registry.register(Command {
            name: "help",
            usage: "",
            description: "Show this list of commands.",
            min_args: 0,
            max_args: 0,
            required: PermissionLevel::User,
            handler: Arc::new(Help),
        });
        registry.register(Command {
            name: "ping",
            usage: "",
            description: "Check that the bridge is running and show your Instagram login state.",
            min_args: 0,
            max_args: 0,
            required: PermissionLevel::User,
            handler: Arc::new(Ping),
        });
        registry.register(Command {
            name: "version",
            usage: "",
            description: "Show the bridge's version.",
            min_args: 0,
            max_args: 0,
            required: PermissionLevel::User,
            handler: Arc::new(Version),
        });
        registry
    }

    /// Adds a command, replacing one of the same name.
    pub fn register(&mut self, command: Command) {
        self.background.remove(command.name);
        self.commands.insert(command.name, command);
    }

    /// Adds a command that runs beside the transactions (it waits on
    /// Instagram); the others run in order with the room's events.
    pub fn register_background(&mut self, command: Command) {
        let name = command.name;
        self.register(command);
        self.background.insert(name);
    }

    /// Whether the command line names a command that runs in the background.
    pub fn runs_in_background(&self, line: &str) -> bool {
        let name = line.split_whitespace().next().unwrap_or_default();
        self.background.contains(name.to_lowercase().as_str())
    }

    pub fn get(&self, name: &str) -> Option<&Command> {
        self.commands.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Command> {
        self.commands.values()
    }

    /// Parses and runs one command line (without its prefix); every outcome,
    /// including errors, is a reply for the user.
    pub async fn dispatch(&self, ctx: &CommandContext<'_>, line: &str) -> Reply {
        let words = match split_arguments(line) {
            Ok(words) => words,
            Err(e) => return Reply::text(format!("{e}. Put arguments with spaces in quotes.")),
        };
        let Some((name, args)) = words.split_first() else {
            return Reply::text(format!(
                "Send `{}` for the list of commands.",
                ctx.invocation("help")
            ));
        };
        let name = name.to_lowercase();
        let Some(command) = self.get(&name) else {
            // The text is not echoed back: a user who types a password when
            // no login is waiting must not see it repeated in the room.
            return Reply::text(format!(
                "Unknown command. Send `{}` for the list of commands.",
                ctx.invocation("help")
            ));
        };
        if ctx.permission < command.required {
            return Reply::text(format!("You are not allowed to use `{}`.", command.name));
        }
        if args.len() < command.min_args || args.len() > command.max_args {
            return usage_reply(ctx, command);
        }
        match command.handler.run(ctx, args).await {
            Ok(reply) => reply,
            Err(CommandError::Usage(problem)) => {
                let usage = usage_reply(ctx, command);
                Reply::text(format!("{problem}\n{}", usage.plain))
            }
            Err(CommandError::Failed(problem)) => {
                Reply::text(format!("`{}` failed: {problem}", command.name))
            }
        }
    }

    /// The help text: every command with its usage and description.
    pub fn help(&self, ctx: &CommandContext<'_>) -> Reply {
        let mut text = String::from("Commands");
        if !ctx.in_management_room {
            text.push_str(&format!(
                " (outside your management room, start them with `{}`)",
                ctx.prefix()
            ));
        }
        text.push(':');
        for command in self.iter().filter(|c| ctx.permission >= c.required) {
            text.push_str(&format!(
                "\n`{}`: {}",
                command.usage_line(),
                command.description
            ));
        }
        Reply::text(text)
    }
}

fn usage_reply(ctx: &CommandContext<'_>, command: &Command) -> Reply {
    Reply::text(format!(
        "Usage: `{}`. {}",
        ctx.invocation(&command.usage_line()),
        command.description
    ))
}

struct Help;

#[async_trait]
impl CommandHandler for Help {
    async fn run(&self, ctx: &CommandContext<'_>, _args: &[String]) -> Result<Reply, CommandError> {
        Ok(ctx.bridge.commands.help(ctx))
    }
}

struct Ping;

#[async_trait]
impl CommandHandler for Ping {
    async fn run(&self, ctx: &CommandContext<'_>, _args: &[String]) -> Result<Reply, CommandError> {
        let uptime = ctx.bridge.started_at.elapsed().as_secs();
        let status = format!(
            "The bridge is running (version {}, up {}).",
            env!("CARGO_PKG_VERSION"),
            format_uptime(uptime)
        );
        let login_state = match ctx.sender_login().await? {
            None => "You are not logged in to Instagram.".to_owned(),
            Some(login) => super::login_state::describe_stored(ctx.bridge, &login)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "cannot read the login's last poll");
                    CommandError::Failed("the bridge's database is unavailable".to_owned())
                })?,
        };
        Ok(Reply::text(format!("{status}\n{login_state}")))
    }
}

fn format_uptime(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

struct Version;

#[async_trait]
impl CommandHandler for Version {
    async fn run(
        &self,
        _ctx: &CommandContext<'_>,
        _args: &[String],
    ) -> Result<Reply, CommandError> {
        Ok(Reply::text(version_string()))
    }
}

/// The git commit this binary was built from, when the build knew it (set
/// by `build.rs`).
pub const GIT_COMMIT: Option<&str> = option_env!("MATRIX_INSTAGRAM_GIT_COMMIT");

/// `matrix-instagram 0.1.0 (abc1234)`, or without the commit when the build
/// did not know it.
pub fn version_string() -> String {
    describe_version(env!("CARGO_PKG_VERSION"), GIT_COMMIT)
}

fn describe_version(version: &str, commit: Option<&str>) -> String {
    match commit.filter(|commit| !commit.is_empty()) {
        Some(commit) => format!("matrix-instagram {version} ({commit})"),
        None => format!("matrix-instagram {version}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::instagram::load_connector;
    use crate::config::Config;
    use crate::matrix::client::HomeserverClient;
    use crate::matrix::namespace::UserNamespace;
    use crate::store::Store;
    use ruma::{room_id, user_id};

    /// Echoes its arguments joined by `|`, or fails on request.
    struct Echo;

    #[async_trait]
    impl CommandHandler for Echo {
        async fn run(
            &self,
            _ctx: &CommandContext<'_>,
            args: &[String],
        ) -> Result<Reply, CommandError> {
            match args.first().map(String::as_str) {
                Some("bad") => Err(CommandError::Usage("`bad` is not allowed.".to_owned())),
                Some("boom") => Err(CommandError::Failed("it broke".to_owned())),
                _ => Ok(Reply::text(args.join("|"))),
            }
        }
    }

    fn register_test_commands(registry: &mut CommandRegistry) {
        registry.register(Command {
            name: "echo",
            usage: "<word> [word...]",
            description: "Repeat the words.",
            min_args: 1,
            max_args: 5,
            required: PermissionLevel::User,
            handler: Arc::new(Echo),
        });
        registry.register(Command {
            name: "shutdown",
            usage: "",
            description: "Stop the bridge.",
            min_args: 0,
            max_args: 0,
            required: PermissionLevel::Admin,
            handler: Arc::new(Echo),
        });
    }

    /// A bridge over a fresh SQLite store; its homeserver is never contacted.
    async fn bridge(dir: &tempfile::TempDir) -> Bridge {
        let url = format!("sqlite://{}/commands.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url).await.expect("test store");
        let mut config = Config::example();
        config.bot.command_prefix = "!ig".to_owned();
        let config = Arc::new(config);
        let client = HomeserverClient::new("http://127.0.0.1:9", "unused").unwrap();
        let namespace = UserNamespace::from_config(config.clone()).unwrap();
        // As if the config sat in the crate root, beside connectors/.
        let config_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.yaml");
        let connector = load_connector(&config, &config_path).expect("the real spec loads");
        let mut bridge = Bridge::new(config, store, client, connector, namespace);
        register_test_commands(&mut bridge.commands);
        bridge
    }

    fn context(
        bridge: &Bridge,
        permission: PermissionLevel,
        in_management_room: bool,
    ) -> CommandContext<'_> {
        CommandContext {
            bridge,
            sender: user_id!("@alice:example.org"),
            room_id: room_id!("!room:example.org"),
            permission,
            in_management_room,
        }
    }

    #[tokio::test]
    async fn help_lists_every_command_the_user_may_run() {
        let dir = tempfile::tempdir().unwrap();
        let bridge = bridge(&dir).await;
        let commands = &bridge.commands;
        let user = context(&bridge, PermissionLevel::User, true);
        let help = commands.dispatch(&user, "help").await;
        for command in commands
            .iter()
            .filter(|c| c.required == PermissionLevel::User)
        {
            let line = format!("`{}`: {}", command.usage_line(), command.description);
            assert!(
                help.plain.contains(&line),
                "{line} missing from {}",
                help.plain
            );
        }
        assert!(help
            .plain
            .contains("`echo <word> [word...]`: Repeat the words."));
        assert!(!help.plain.contains("shutdown"));
        assert!(help.html.contains("<code>help</code>"));

        let admin = context(&bridge, PermissionLevel::Admin, false);
        let help = commands.dispatch(&admin, "help").await;
        assert_eq!(help.plain.lines().count(), 1 + commands.iter().count());
        assert!(help.plain.contains("`shutdown`: Stop the bridge."));
        assert!(help.plain.contains("start them with `!ig`"));
    }

    #[tokio::test]
    async fn dispatch_parses_arguments_and_answers_every_failure() {
        let dir = tempfile::tempdir().unwrap();
        let bridge = bridge(&dir).await;
        let commands = &bridge.commands;
        let ctx = context(&bridge, PermissionLevel::User, true);
        let answer = |line: &'static str| {
            let ctx = &ctx;
            async move { commands.dispatch(ctx, line).await.plain }
        };

        assert_eq!(
            answer(r#"ECHO "two words" 'x' y\ z"#).await,
            "two words|x|y z"
        );
        assert_eq!(
            answer("frobnicate").await,
            "Unknown command. Send `help` for the list of commands."
        );
        assert_eq!(
            answer("echo").await,
            "Usage: `echo <word> [word...]`. Repeat the words."
        );
        assert_eq!(
            answer("ping now").await,
            "Usage: `ping`. Check that the bridge is running and show your Instagram login state."
        );
        assert_eq!(
            answer("echo bad").await,
            "`bad` is not allowed.\nUsage: `echo <word> [word...]`. Repeat the words."
        );
        assert_eq!(answer("echo boom").await, "`echo` failed: it broke");
        assert_eq!(
            answer("shutdown").await,
            "You are not allowed to use `shutdown`."
        );
        assert!(answer(r#"echo "open"#)
            .await
            .starts_with("cannot parse the command"));
        assert_eq!(answer("").await, "Send `help` for the list of commands.");
    }

    #[tokio::test]
    async fn outside_the_management_room_answers_name_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let bridge = bridge(&dir).await;
        let commands = &bridge.commands;
        let ctx = context(&bridge, PermissionLevel::User, false);
        assert_eq!(
            commands.dispatch(&ctx, "nope").await.plain,
            "Unknown command. Send `!ig help` for the list of commands."
        );
        assert_eq!(
            commands.dispatch(&ctx, "version extra").await.plain,
            "Usage: `!ig version`. Show the bridge's version."
        );
    }

    #[tokio::test]
    async fn ping_reports_the_login_state() {
        let dir = tempfile::tempdir().unwrap();
        let bridge = bridge(&dir).await;
        let commands = &bridge.commands;
        let ctx = context(&bridge, PermissionLevel::User, true);
        let reply = commands.dispatch(&ctx, "ping").await.plain;
        assert!(
            reply.starts_with("The bridge is running (version "),
            "{reply}"
        );
        assert!(
            reply.ends_with("You are not logged in to Instagram."),
            "{reply}"
        );
    }

    #[test]
    fn commands_that_wait_on_instagram_run_in_the_background() {
        let mut registry = CommandRegistry::with_builtins();
        registry.register_background(Command {
            name: "slow",
            usage: "",
            description: "Wait on Instagram.",
            min_args: 0,
            max_args: 0,
            required: PermissionLevel::User,
            handler: Arc::new(Echo),
        });
        assert!(registry.runs_in_background("SLOW now"));
        assert!(!registry.runs_in_background("help"));
        assert!(!registry.runs_in_background("   "));
        registry.register(Command {
            name: "slow",
            usage: "",
            description: "Quick now.",
            min_args: 0,
            max_args: 0,
            required: PermissionLevel::User,
            handler: Arc::new(Echo),
        });
        assert!(!registry.runs_in_background("slow"));
    }

    #[test]
    fn splits_plain_words() {
        assert_eq!(
            split_arguments("login  alice   secret").unwrap(),
            vec!["login", "alice", "secret"]
        );
    }

    #[test]
    fn keeps_quoted_arguments_together() {
        assert_eq!(
            split_arguments(r#"sync "my friend" 'it''s' a\ b"#).unwrap(),
            vec!["sync", "my friend", "its", "a b"]
        );
        assert_eq!(
            split_arguments(r#"say "she said \"hi\"""#).unwrap(),
            vec!["say", r#"she said "hi""#]
        );
    }

    #[test]
    fn rejects_unbalanced_quotes() {
        assert_eq!(split_arguments(r#"login "alice"#), Err(ParseError));
        assert_eq!(split_arguments("login alice\\"), Err(ParseError));
    }

    #[test]
    fn empty_line_has_no_words() {
        assert!(split_arguments("   ").unwrap().is_empty());
    }

    #[test]
    fn reply_html_escapes_and_renders_code() {
        let reply = Reply::text("Send `help` <now>\nthanks & bye");
        assert_eq!(reply.plain, "Send `help` <now>\nthanks & bye");
        assert_eq!(
            reply.html,
            "Send <code>help</code> &lt;now&gt;<br>thanks &amp; bye"
        );
    }

    #[test]
    fn uptime_is_human_readable() {
        assert_eq!(format_uptime(59), "59s");
        assert_eq!(format_uptime(61), "1m 1s");
        assert_eq!(format_uptime(3 * 3600 + 120), "3h 2m");
    }

    #[test]
    fn version_names_the_crate_version_and_the_commit() {
        assert!(version_string()
            .starts_with(&format!("matrix-instagram {}", env!("CARGO_PKG_VERSION"))));
        assert_eq!(
            describe_version("1.2.3", Some("abc1234")),
            "matrix-instagram 1.2.3 (abc1234)"
        );
        assert_eq!(describe_version("1.2.3", None), "matrix-instagram 1.2.3");
        assert_eq!(
            describe_version("1.2.3", Some("")),
            "matrix-instagram 1.2.3"
        );
    }

    /// Built in a git checkout (and without an override), the version names
    /// the commit git reports; elsewhere there is nothing to compare.
    #[test]
    fn build_records_the_checkout_commit() {
        let head = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output();
        let Some(head) = head.ok().filter(|output| output.status.success()) else {
            return;
        };
        let head = String::from_utf8(head.stdout).unwrap();
        if std::env::var_os("MATRIX_INSTAGRAM_GIT_COMMIT").is_none() {
            assert_eq!(GIT_COMMIT, Some(head.trim()));
            assert!(version_string().ends_with(&format!("({})", head.trim())));
        }
    }
}
