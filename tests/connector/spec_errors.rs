//! Broken copies of the real spec: every problem is reported at once, each
//! naming the file, the action (or section) and the field.

use matrix_instagram::connector::spec::{Spec, SpecProblem};

use crate::common::{load_spec, spec_path};

const FILE: &str = "connectors/broken.yaml";

fn real_spec_text() -> String {
    std::fs::read_to_string(spec_path()).unwrap()
}

/// Applies text replacements to the real spec (each must match) and loads it.
fn load_broken(edits: &[(&str, &str)]) -> Vec<SpecProblem> {
    let mut text = real_spec_text();
    for (from, to) in edits {
        assert!(text.contains(from), "the spec no longer contains {from:?}");
        text = text.replacen(from, to, 1);
    }
    Spec::parse(FILE, &text)
        .expect_err("a broken spec must not load")
        .problems
}

#[test]
fn the_real_spec_loads_with_every_action() {
    let spec = load_spec();
    let expected = [
        "current_user",
        "list_conversations",
        "list_conversations_page",
        "get_conversation",
        "get_conversation_with",
        "list",
        "list_page",
        "get",
        "search",
        "get_unread",
        "get_presence",
        "lookup_user",
        "get_user",
        "send",
        "send_to_user",
        "send_link",
        "send_photo",
        "send_video",
        "send_voice",
        "edit",
        "react",
        "unreact",
        "mark_read",
        "mark_unread",
        "delete",
        "mute",
        "unmute",
        "archive",
        "send_typing",
        "list_pending",
        "approve",
        "search_users",
        "create_group",
        "rename",
        "add_users",
        "leave",
    ];
    let names: Vec<&str> = spec.actions.keys().map(String::as_str).collect();
    assert_eq!(names, expected);
    assert!(spec.validate.is_some() && spec.keep_alive.is_some());
    assert_eq!(spec.actions["send_photo"].steps.len(), 2);
}

#[test]
fn a_bad_expression_names_file_action_field_and_column() {
    let problems = load_broken(&[(r#"text: "{{params.text}}""#, r#"text: "{{params.text""#)]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let problem = &problems[0];
    assert_eq!(
        (
            problem.file.as_str(),
            problem.scope.as_str(),
            problem.field.as_str()
        ),
        (FILE, "action send", "rest.body.text")
    );
    let shown = problem.to_string();
    assert!(
        shown.starts_with("connectors/broken.yaml: action send: rest.body.text: "),
        "{shown}"
    );
    assert!(
        shown.contains("column") && shown.contains("{{params.text"),
        "{shown}"
    );
}

#[test]
fn a_bad_mapping_expression_names_the_mapping_field() {
    let problems = load_broken(&[(
        r#"content: ".matched_message_info.item_info.text""#,
        r#"content: ".matched_message_info.item_info.text | shout""#,
    )]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].scope, "action search");
    assert_eq!(problems[0].field, "rest.response.mapping.content");
    assert!(
        problems[0].message.contains("unknown filter `shout`"),
        "{}",
        problems[0]
    );
}

#[test]
fn an_unknown_key_is_named_with_its_path() {
    let problems = load_broken(&[(
        "      method: POST\n      url: \"{{api.base_url}}/direct_v2/threads/{{params.conversation_id}}/mute/\"",
        "      metod: POST\n      url: \"{{api.base_url}}/direct_v2/threads/{{params.conversation_id}}/mute/\"",
    )]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].scope, "action mute");
    assert!(problems[0].field.starts_with("rest"), "{}", problems[0]);
    assert!(
        problems[0].message.contains("unknown field `metod`"),
        "{}",
        problems[0]
    );
}

#[test]
fn a_missing_required_field_is_named() {
    let problems = load_broken(&[(
        "      url: \"{{api.base_url}}/direct_v2/threads/{{params.conversation_id}}/unmute/\"\n",
        "",
    )]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].scope, "action unmute");
    assert!(
        problems[0].message.contains("missing field `url`"),
        "{}",
        problems[0]
    );
}

#[test]
fn a_yaml_syntax_error_has_line_and_column() {
    let problems = load_broken(&[(
        "  base_url: \"https://i.instagram.com/api/v1\"",
        "  base_url: \"https://i.instagram.com/api/v1",
    )]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let shown = problems[0].to_string();
    assert!(
        shown.starts_with("connectors/broken.yaml: YAML syntax error: "),
        "{shown}"
    );
    assert!(
        shown.contains("line ") && shown.contains("column "),
        "{shown}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let problems = load_broken(&[
        (r#"text: "{{params.text}}""#, r#"text: "{{params.text""#),
        (
            "        type: enum\n        values: [\"\", \"unread\", \"flagged\"]",
            "        type: enum",
        ),
        (
            "      - pattern: '\"message\":\\s*\"CSRF'",
            "      - pattern: '\"message\":\\s*\"(CSRF'",
        ),
        (
            "    User-Agent:",
            "    Host: \"i.instagram.com\"\n    User-Agent:",
        ),
        ("          body_file: photo", "          body_file: picture"),
        ("    interval: \"4h\"", "    interval: \"4 hours\""),
        ("type: cookies", "type: oauth"),
    ]);
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let expect = [
        "connectors/broken.yaml: auth: type: unknown variant `oauth`",
        "connectors/broken.yaml: action list_conversations: params.filter.values: an enum needs a list of values",
        "connectors/broken.yaml: action send: rest.body.text: ",
        "connectors/broken.yaml: action send_photo: steps[0].rest.body_file: no parameter named `picture`",
        "connectors/broken.yaml: api: headers.Host: `Host` is set by the HTTP client",
        "connectors/broken.yaml: session: error_detection.response_patterns[0].pattern: invalid regular expression",
        "connectors/broken.yaml: session.keep_alive: interval: unknown duration unit `hours`",
    ];
    for expected in expect {
        assert!(
            shown.iter().any(|line| line.starts_with(expected)),
            "missing {expected:?} in:\n{}",
            shown.join("\n")
        );
    }
}

#[test]
fn a_bad_default_and_an_unknown_param_type_are_reported() {
    let problems = load_broken(&[
        (
            "        default: 20\n        max: 50\n      filter:",
            "        default: lots\n        max: 50\n      filter:",
        ),
        (
            "      emoji:\n        type: string\n        required: true",
            "      emoji:\n        type: emoji\n        required: true",
        ),
    ]);
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        shown.iter().any(|line| line
            == "connectors/broken.yaml: action list_conversations: params.limit.default: must be a number, not `lots`"),
        "{shown:?}"
    );
    assert!(
        shown.iter().any(|line| line.starts_with(
            "connectors/broken.yaml: action react: params.emoji.type: unknown variant `emoji`"
        )),
        "{shown:?}"
    );
}

#[test]
fn login_steps_follow_the_web_base_url() {
    let spec = load_spec();
    let vars = serde_json::json!({"api": {"web_base_url": "http://127.0.0.1:9999"}});
    let steps = spec.render_connect_steps(&vars).unwrap();
    assert_eq!(
        steps[0],
        serde_json::json!({"goto": "http://127.0.0.1:9999/accounts/login/"})
    );
    let home_wait = steps
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|step| step.get("wait_for").is_some())
        .expect("a wait_for step");
    assert_eq!(
        home_wait["wait_for"]["any"][0],
        serde_json::json!({"url_matches": "^http://127.0.0.1:9999/$"})
    );
}

#[test]
fn problems_in_different_parts_of_one_action_are_all_reported() {
    let problems = load_broken(&[
        ("  send:\n    label: \"Send message\"", "  send:\n    lable: \"Send message\""),
        ("      reply_to:\n        type: string", "      reply_to:\n        type: text"),
        (
            r#"      client_context: "{{params.client_context | default: generate_mutation_token}}""#,
            r#"      client_context: "{{params.client_context | default: }}""#,
        ),
        ("      url: \"{{api.base_url}}/direct_v2/threads/broadcast/text/\"\n      body:\n        action: \"send_item\"\n        thread_ids", "      url: \"{{api.base_url}}/direct_v2/threads/broadcast/text/\"\n      bodyy:\n        action: \"send_item\"\n        thread_ids"),
    ]);
    let fields: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| (p.scope.as_str(), p.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("action send", "params.reply_to.type"),
            ("action send", "rest.bodyy"),
            ("action send", "lable"),
            ("action send", "vars.client_context"),
        ],
        "{problems:#?}"
    );
}

/// The one problem a broken copy has, as shown to the user.
fn only_problem(edits: &[(&str, &str)]) -> String {
    let problems = load_broken(edits);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    problems[0].to_string()
}

#[test]
fn an_undeclared_parameter_is_named_with_the_template() {
    assert_eq!(
        only_problem(&[(r#"text: "{{params.text}}""#, r#"text: "{{params.txt}}""#)]),
        "connectors/broken.yaml: action send: rest.body.text: unknown parameter `txt` in \
         '{{params.txt}}' (declared: conversation_id, text, reply_to, reply_to_client_context, \
         client_context)"
    );
    // A parameter read only inside an expression's filter argument is checked too.
    assert_eq!(
        only_problem(&[(
            r#"        query: "{{params.query}}""#,
            r#"        query: "{{params.q | default: params.query}}""#
        )]),
        "connectors/broken.yaml: action search: rest.params.query: unknown parameter `q` in \
         '{{params.q | default: params.query}}' (declared: query)"
    );
}

#[test]
fn a_context_value_must_come_from_the_responses_context() {
    let problems = load_broken(&[(
        "        context:\n          viewer_id: \"thread.viewer_id\"\n        mapping: *message",
        "        context:\n          viewer: \"thread.viewer_id\"\n        mapping: *message",
    )]);
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "connectors/broken.yaml: action list: rest.response.mapping.sender.is_self: unknown \
             context value `viewer_id` in '.user_id == {{context.viewer_id}}' (this response's \
             `context:` defines: viewer)",
            "connectors/broken.yaml: action list: rest.response.mapping.is_outgoing: unknown \
             context value `viewer_id` in '.user_id == {{context.viewer_id}}' (this response's \
             `context:` defines: viewer)",
        ]
    );
}

#[test]
fn a_step_can_read_only_earlier_steps() {
    assert_eq!(
        only_problem(&[(
            r#"attachment_fbid: "{{steps.upload.media_id}}""#,
            r#"attachment_fbid: "{{steps.send.media_id}}""#
        )]),
        "connectors/broken.yaml: action send_photo: steps[1].rest.body.attachment_fbid: unknown \
         step `send` in '{{steps.send.media_id}}' (earlier steps: upload)"
    );
}

#[test]
fn a_retry_rule_is_checked_when_the_spec_loads() {
    assert_eq!(
        only_problem(&[(
            "            attempts: 10\n            delay: \"1s\"",
            "            attempts: 0\n            delay: \"1s\"",
        )]),
        "connectors/broken.yaml: action send_video: steps[1].rest.retry.attempts: must be \
         between 1 and 60"
    );
    assert_eq!(
        only_problem(&[(
            "when: \"status == 202 && .message",
            "when: \"stauts == 202 && .message",
        )]),
        "connectors/broken.yaml: action send_video: steps[1].rest.retry.when: unknown name \
         `stauts` in 'stauts == 202 && .message == 'Transcode not finished yet.'' (known here: \
         auth, device, api, params, vars, steps, status)"
    );
    assert_eq!(
        only_problem(&[("            delay: \"1s\"", "            delay: \"soon\"")]),
        "connectors/broken.yaml: action send_video: steps[1].rest.retry.delay: `soon` is not a \
         duration such as 500ms, 30s, 5m or 4h"
    );
}

#[test]
fn a_var_can_read_only_vars_defined_before_it() {
    assert_eq!(
        only_problem(&[(
            "      client_context: \"{{params.client_context | default: generate_mutation_token}}\"\n      upload_ms: \"{{now_ms}}\"",
            "      client_context: \"{{vars.upload_ms}}\"\n      upload_ms: \"{{now_ms}}\"",
        )]),
        "connectors/broken.yaml: action send_photo: vars.client_context: unknown var `upload_ms` \
         in '{{vars.upload_ms}}' (defined before this point: none)"
    );
}

#[test]
fn unknown_roots_are_refused_where_no_response_key_can_be_meant() {
    let problems = load_broken(&[
        (
            r#"url: "{{api.base_url}}/direct_v2/threads/{{params.conversation_id}}/mute/""#,
            r#"url: "{{apii.base_url}}/direct_v2/threads/{{params.conversation_id}}/mute/""#,
        ),
        (
            "          content_type: \"'text'\"\n          kind: \".matched",
            "          content_type: \"text\"\n          kind: \".matched",
        ),
        (
            r#"X-IG-Device-ID: "{{device.uuid}}""#,
            r#"X-IG-Device-ID: "{{params.device_id}}""#,
        ),
        (
            r#"X-IG-WWW-Claim: "{{auth.ig_www_claim | default: '0'}}""#,
            r#"X-IG-WWW-Claim: "{{auth.www_claim | default: '0'}}""#,
        ),
        (
            r#"goto: "{{api.web_base_url}}/accounts/login/""#,
            r#"goto: "{{api.web_url}}/accounts/login/""#,
        ),
        (
            r#"url: "{{api.base_url}}/direct_v2/get_presence/""#,
            r#"url: "{{api.base_url}}/direct_v2/{{device.id}}/""#,
        ),
    ]);
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "connectors/broken.yaml: action search: rest.response.mapping.content_type: unknown \
             name `text` in 'text' (known here: auth, device, api, params, vars, steps)",
            "connectors/broken.yaml: action mute: rest.url: unknown name `apii` in \
             '{{apii.base_url}}/direct_v2/threads/{{params.conversation_id}}/mute/' (known here: \
             auth, device, api, params, vars, steps)",
            "connectors/broken.yaml: api: headers.X-IG-Device-ID: unknown name `params` in \
             '{{params.device_id}}' (known here: auth, device, api)",
            "connectors/broken.yaml: api: headers.X-IG-WWW-Claim: unknown auth value `www_claim` \
             in '{{auth.www_claim | default: '0'}}' (cookies and what response hooks store: \
             cookies, ig_www_claim, ig_u_rur, ig_u_shbid, ig_u_shbts, x_mid)",
            "connectors/broken.yaml: session.keep_alive: rest.url: unknown device value `id` in \
             '{{api.base_url}}/direct_v2/{{device.id}}/' (known: uuid, phone_id, android_id, \
             user_agent)",
            "connectors/broken.yaml: auth: connect.playwright.steps[0].goto: unknown api value \
             `web_url` in '{{api.web_url}}/accounts/login/' (known: base_url, web_base_url, \
             upload_base_url)",
        ],
        "{shown:#?}"
    );
}

#[test]
fn response_keys_are_names_in_root_and_context_only() {
    // `root:` may name any key of the response body: this one is simply absent.
    let spec = Spec::parse(
        FILE,
        &real_spec_text().replacen(
            r#"root: "message_search_results.message_search_result_items""#,
            r#"root: "results.items""#,
            1,
        ),
    );
    assert!(spec.is_ok(), "{:?}", spec.err());
}

#[test]
fn a_parameter_that_did_not_load_is_not_reported_again_where_it_is_used() {
    let problems = load_broken(&[(
        "      reply_to:\n        type: string",
        "      reply_to:\n        type: text",
    )]);
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["params.reply_to.type"], "{problems:#?}");
}

#[test]
fn broken_login_steps_are_reported_with_their_place() {
    let problems = load_broken(&[
        ("value: {input: password}", "value: {input: pasword}"),
        (
            "        - click: \"button[type='submit']\"",
            "        - clik: \"button[type='submit']\"",
        ),
        (
            "            kind: bad_credentials",
            "            kinds: bad_credentials",
        ),
        (
            "                    - url_matches: \"^{{api.web_base_url}}/challenge/\"",
            "                    - url_matches: \"^{{api.web_base_url}}/(challenge/\"",
        ),
    ]);
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let expected = [
        "connectors/broken.yaml: auth: connect.playwright.steps[4].fill: unknown input `pasword` (connect.playwright.inputs declares: username, password)",
        "connectors/broken.yaml: auth: connect.playwright.steps[5].clik: unknown step type `clik` (known: goto, wait_for, fail_if, if_selector, assert_cookies, extract_cookies, extract, click, fill, type, close)",
        "connectors/broken.yaml: auth: connect.playwright.steps[7].fail_if: `kind` is required",
    ];
    for line in expected {
        assert!(
            shown.iter().any(|shown| shown == line),
            "{line}\nin {shown:?}"
        );
    }
    assert!(
        shown.iter().any(|line| line.starts_with(
            "connectors/broken.yaml: auth: connect.playwright.steps[8].if_selector.steps[2].wait_for: url_matches `^{{api.web_base_url}}/(challenge/` is not a regular expression"
        )),
        "{shown:?}"
    );
    assert_eq!(shown.len(), 4, "{shown:?}");
}
