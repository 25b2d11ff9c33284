//! Matrix text messages (`m.text`, `m.notice`, `m.emote`) as Instagram text:
//! a formatted body becomes plain text (parsed as HTML, never with regexes),
//! a mention pill of a puppet becomes `@username`, a reply's fallback (the
//! quoted original, `<mx-reply>` or leading `> ` lines) is left out, and an
//! emote is prefixed with `/me `, as mautrix-meta sends them (Instagram has
//! no emotes, and `/me` reads as one in every chat app).

use std::collections::HashMap;

use ego_tree::NodeRef;
use percent_encoding::percent_decode_str;
use scraper::{Html, Node};

/// Where a mention pill points: `https://matrix.to/#/@user:server` (the
/// id may be percent-encoded).
const MATRIX_TO: &str = "https://matrix.to/#/";

/// Elements that stand on lines of their own.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "ul",
    "ol",
    "li",
    "table",
    "tr",
    "hr",
    "blockquote",
    "details",
    "summary",
];

/// The Matrix user ids that pills in `html` point at, in order of appearance.
pub fn pill_targets(html: &str) -> Vec<String> {
    let fragment = Html::parse_fragment(html);
    let mut users = Vec::new();
    for node in fragment.tree.root().descendants() {
        if let Node::Element(element) = node.value() {
            if let Some(user) = element.attr("href").and_then(pill_user) {
                if !users.contains(&user) {
                    users.push(user);
                }
            }
        }
    }
    users
}

/// The user id of a `matrix.to` user link.
fn pill_user(href: &str) -> Option<String> {
    let rest = href.strip_prefix(MATRIX_TO)?;
    let id = rest.split(['?', '/']).next()?;
    let decoded = percent_decode_str(id).decode_utf8().ok()?;
    decoded.starts_with('@').then(|| decoded.into_owned())
}

/// The text of a formatted (HTML) body; `mentions` maps a pill's Matrix user
/// id to what it becomes (`@username`); other pills keep their text.
pub fn html_to_plain(html: &str, mentions: &HashMap<String, String>) -> String {
    let fragment = Html::parse_fragment(html);
    let mut out = Plain::default();
    for child in fragment.tree.root().children() {
        render(child, mentions, &mut out, false);
    }
    out.finish()
}

/// Plain text being written: knows whether a line is open, so blocks start
/// on fresh lines without piling up empty ones.
#[derive(Default)]
struct Plain {
    text: String,
}

impl Plain {
    fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    fn at_line_start(&self) -> bool {
        self.text.is_empty() || self.text.ends_with('\n')
    }

    fn line_break(&mut self) {
        self.text.push('\n');
    }

    fn end_line(&mut self) {
        if !self.at_line_start() {
            self.text.push('\n');
        }
    }

    fn finish(self) -> String {
        let lines: Vec<&str> = self.text.lines().map(str::trim_end).collect();
        let mut text = String::new();
        let mut blank_run = 0;
        for line in lines {
            if line.is_empty() {
                blank_run += 1;
                if blank_run > 1 {
                    continue;
                }
            } else {
                blank_run = 0;
            }
            text.push_str(line);
            text.push('\n');
        }
        text.trim().to_owned()
    }
}

fn render(node: NodeRef<'_, Node>, mentions: &HashMap<String, String>, out: &mut Plain, pre: bool) {
    match node.value() {
        Node::Text(text) => {
            if pre {
                out.push(text);
                return;
            }
            let collapsed = collapse_whitespace(text);
            let collapsed = if out.at_line_start() || out.text.ends_with(' ') {
                collapsed.trim_start()
            } else {
                collapsed.as_str()
            };
            out.push(collapsed);
        }
        Node::Element(element) => {
            let name = element.name();
            match name {
                "mx-reply" | "script" | "style" => return,
                "br" => {
                    out.line_break();
                    return;
                }
                "img" => {
                    out.push(element.attr("alt").unwrap_or_default());
                    return;
                }
                _ => {}
            }
            if let Some(user) = element.attr("href").and_then(pill_user) {
                if let Some(mention) = mentions.get(&user) {
                    out.push(mention);
                    return;
                }
            }
            let block = BLOCKS.contains(&name);
            if block {
                out.end_line();
            }
            match name {
                "li" => {
                    let ordered_index = node
                        .parent()
                        .filter(
                            |parent| matches!(parent.value(), Node::Element(p) if p.name() == "ol"),
                        )
                        .map(|_| {
                            node.prev_siblings()
                                .filter(
                                    |s| matches!(s.value(), Node::Element(e) if e.name() == "li"),
                                )
                                .count()
                                + 1
                        });
                    match ordered_index {
                        Some(index) => out.push(&format!("{index}. ")),
                        None => out.push("- "),
                    }
                }
                "blockquote" => {
                    let mut quoted = Plain::default();
                    for child in node.children() {
                        render(child, mentions, &mut quoted, pre);
                    }
                    for line in quoted.finish().lines() {
                        out.push("> ");
                        out.push(line);
                        out.line_break();
                    }
                    return;
                }
                "hr" => {
                    out.push("---");
                    out.line_break();
                    return;
                }
                _ => {}
            }
            let in_pre = pre || name == "pre";
            let before = out.text.len();
            for child in node.children() {
                render(child, mentions, out, in_pre);
            }
            if name == "a" {
                if let Some(href) = element.attr("href") {
                    let shown = out.text[before..].trim();
                    // A pill of someone not on Instagram keeps only its name.
                    let web = (href.starts_with("https://") || href.starts_with("http://"))
                        && !href.starts_with(MATRIX_TO);
                    if web && shown != href && !shown.is_empty() {
                        out.push(&format!(" ({href})"));
                    } else if web && shown.is_empty() {
                        out.push(href);
                    }
                }
            }
            if block {
                out.end_line();
            }
        }
        _ => {
            for child in node.children() {
                render(child, mentions, out, pre);
            }
        }
    }
}

/// HTML whitespace: every run of spaces and line breaks reads as one space.
fn collapse_whitespace(text: &str) -> String {
    let mut collapsed = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            if !in_space {
                collapsed.push(' ');
            }
            in_space = true;
        } else {
            collapsed.push(c);
            in_space = false;
        }
    }
    collapsed
}

/// A reply's plain body without its fallback: the `> ` lines quoting the
/// original at the start, and the blank line after them.
pub fn strip_reply_fallback(body: &str) -> &str {
    if !body.starts_with("> ") && !body.starts_with(">\n") {
        return body;
    }
    let mut rest = body;
    while rest.starts_with('>') {
        match rest.find('\n') {
            Some(end) => rest = &rest[end + 1..],
            None => return "",
        }
    }
    rest.strip_prefix('\n').unwrap_or(rest)
}

/// An emote as Instagram text.
pub fn emote(text: &str) -> String {
    format!("/me {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(html: &str) -> String {
        html_to_plain(html, &HashMap::new())
    }

    #[test]
    fn formatting_becomes_plain_text() {
        assert_eq!(
            plain("<b>bold</b> and <i>it&amp;alic</i>"),
            "bold and it&alic"
        );
        assert_eq!(plain("<p>one</p>\n<p>two</p>"), "one\ntwo");
        assert_eq!(plain("line<br>next<br/>last"), "line\nnext\nlast");
        assert_eq!(plain("<ul>\n<li>a</li>\n<li>b</li>\n</ul>"), "- a\n- b");
        assert_eq!(plain("<ol><li>a</li><li>b</li></ol>"), "1. a\n2. b");
        assert_eq!(
            plain("<blockquote><p>quoted</p></blockquote><p>mine</p>"),
            "> quoted\nmine"
        );
        assert_eq!(plain("<pre><code>a  b\n  c</code></pre>"), "a  b\n  c");
        assert_eq!(plain("x &lt;y&gt; <script>evil()</script>"), "x <y>");
    }

    #[test]
    fn links_keep_their_address() {
        assert_eq!(
            plain(r#"see <a href="https://example.org/a">the page</a>"#),
            "see the page (https://example.org/a)"
        );
        assert_eq!(
            plain(r#"<a href="https://example.org">https://example.org</a>"#),
            "https://example.org"
        );
    }

    #[test]
    fn pills_of_known_users_become_usernames() {
        let html = r#"hi <a href="https://matrix.to/#/@instagram_42:example.org">Bob (Instagram)</a>, and <a href="https://matrix.to/#/%40carol%3Aexample.org?via=x">Carol</a>"#;
        assert_eq!(
            pill_targets(html),
            ["@instagram_42:example.org", "@carol:example.org"]
        );
        let mentions =
            HashMap::from([("@instagram_42:example.org".to_owned(), "@bob.b".to_owned())]);
        assert_eq!(html_to_plain(html, &mentions), "hi @bob.b, and Carol");
    }

    #[test]
    fn reply_fallbacks_are_left_out() {
        let html = "<mx-reply><blockquote><a href=\"https://matrix.to/#/!r/$e\">In reply to</a> \
                    <a href=\"https://matrix.to/#/@bob:x\">@bob:x</a><br>original</blockquote>\
                    </mx-reply>my answer";
        assert_eq!(plain(html), "my answer");
        assert_eq!(
            strip_reply_fallback("> <@bob:x> original\n> more\n\nmy answer\n> not a quote"),
            "my answer\n> not a quote"
        );
        assert_eq!(strip_reply_fallback("no fallback"), "no fallback");
        assert_eq!(strip_reply_fallback("> only a quote"), "");
    }

    #[test]
    fn emotes_read_as_slash_me() {
        assert_eq!(emote("waves"), "/me waves");
    }
}
