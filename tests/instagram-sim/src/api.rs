//! The private API under `/api/v1/...`, the `/rupload_*` upload endpoints and `/media/...`:
//! authentication (cookies or `Authorization: Bearer IGT:2:`), CSRF, challenge and rate-limit
//! checks as Instagram makes them, then one handler per endpoint of contract.md.

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};

use crate::cursor::{CursorRefusal, CursorTarget};
use crate::error::SimError;
use crate::gate::{ClaimFacts, RequestFacts};
use crate::render::{self, InboxPage};
use crate::settings::page_size;
use crate::signing;
use crate::upload::UploadKind;
use crate::world::{now_ms, parse_item_id, ClaimEcho, ThreadRecord, World};
use crate::SharedWorld;

/// Request parameters: the query for GETs, the form (plain or `signed_body`) for POSTs.
type Params = HashMap<String, String>;

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn error_response(error: &SimError) -> Response {
    let (status, body) = error.status_and_body();
    json_response(status, &body)
}

pub(crate) fn parse_cookies(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

/// Decodes a urlencoded body; a `signed_body=SIGNATURE.<json>` field is unpacked into
/// its JSON fields (string values as-is, others as JSON text).
pub(crate) fn parse_form(body: &[u8]) -> Params {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let mut params = Params::new();
    for (name, value) in pairs {
        if name == "signed_body" {
            let json_text = value
                .split_once('.')
                .map_or(value.as_str(), |(_, json)| json);
            if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(json_text) {
                for (field, field_value) in fields {
                    let text = match field_value {
                        Value::String(text) => text,
                        other => other.to_string(),
                    };
                    params.insert(field, text);
                }
            }
        } else {
            params.insert(name, value);
        }
    }
    params
}

fn parse_query(uri: &Uri) -> Params {
    serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default()
}

/// Ids out of `[1,2]`, `["1","2"]` or `[[1,2]]`: parsed as text because thread ids do not
/// fit any JSON number type.
fn id_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(|part| {
            part.trim_matches(|c: char| c == '[' || c == ']' || c == '"' || c.is_whitespace())
        })
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect()
}

fn pk_list(text: &str) -> Result<Vec<u64>, SimError> {
    id_list(text)
        .iter()
        .map(|id| {
            id.parse()
                .map_err(|_| SimError::BadParameter { name: "user ids" })
        })
        .collect()
}

fn required<'a>(params: &'a Params, name: &'static str) -> Result<&'a str, SimError> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
        .ok_or(SimError::BadParameter { name })
}

fn item_id_param(text: &str) -> Result<u128, SimError> {
    parse_item_id(text).ok_or(SimError::BadParameter { name: "item_id" })
}

fn limit_param(params: &Params, name: &'static str, default: usize) -> Result<usize, SimError> {
    match params.get(name) {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|limit| *limit > 0)
            .ok_or(SimError::BadParameter { name }),
        None => Ok(default),
    }
}

/// The authenticated caller of a request.
struct Caller {
    pk: u64,
    session: String,
    via_cookie: bool,
    claim: String,
}

/// Who is asking: the account, and the session (cursors are bound to it).
pub(crate) struct Viewer<'a> {
    pub pk: u64,
    pub session: &'a str,
}

/// Finds the session from the `sessionid` cookie (checked against `ds_user_id`) or the
/// bearer token.
fn authenticate(
    world: &World,
    headers: &HeaderMap,
    cookies: &HashMap<String, String>,
) -> Option<Caller> {
    if let Some(sessionid) = cookies.get("sessionid") {
        let session = world.sessions.get(sessionid)?;
        if cookies
            .get("ds_user_id")
            .is_some_and(|ds_user_id| ds_user_id != &session.pk.to_string())
        {
            return None;
        }
        return Some(Caller {
            pk: session.pk,
            session: sessionid.clone(),
            via_cookie: true,
            claim: session.www_claim.clone(),
        });
    }
    let bearer = headers.get("authorization")?.to_str().ok()?;
    let encoded = bearer.strip_prefix("Bearer IGT:2:")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let token: Value = serde_json::from_slice(&decoded).ok()?;
    let sessionid = token.get("sessionid")?.as_str()?;
    let session = world.sessions.get(sessionid)?;
    Some(Caller {
        pk: session.pk,
        session: sessionid.to_owned(),
        via_cookie: false,
        claim: session.www_claim.clone(),
    })
}

/// Runs the checks every authenticated endpoint shares, then `handler` under the lock, then
/// signs the media URLs of the answer (and drifts it, in drift mode).
fn guarded(
    shared: &SharedWorld,
    method: &Method,
    headers: &HeaderMap,
    facts: &mut RequestFacts,
    handler: impl FnOnce(&mut World, &Viewer<'_>) -> Result<Value, SimError>,
) -> Result<Value, SimError> {
    let mut world = crate::lock(shared);
    if !world.admit_request() {
        return Err(SimError::RateLimited);
    }
    let cookies = parse_cookies(headers);
    let mut caller = authenticate(&world, headers, &cookies).ok_or(SimError::LoginRequired)?;
    facts.pk = Some(caller.pk);
    let sent_claim = headers
        .get("x-ig-www-claim")
        .and_then(|value| value.to_str().ok());
    let now = Instant::now();
    let settings = world.settings;
    let session = world
        .sessions
        .get_mut(&caller.session)
        .ok_or(SimError::LoginRequired)?;
    if let Some(end) = session.ended {
        return Err(SimError::SessionEnded { end });
    }
    session.check_device(
        headers
            .get("x-ig-device-id")
            .and_then(|value| value.to_str().ok()),
    )?;
    session.rotate_if_due(&settings, now);
    caller.claim = session.www_claim.clone();
    let sent_csrftoken = cookies.get("csrftoken").map(String::as_str);
    if caller.via_cookie && sent_csrftoken != Some(session.csrftoken.as_str()) {
        facts.set_cookies.push(format!(
            "csrftoken={}; Domain=.instagram.com; Max-Age=31449600; Path=/; Secure",
            session.csrftoken
        ));
    }
    // Sent until the client echoes the current routing hint, as the claim is.
    let rur_echo = match headers
        .get("ig-u-rur")
        .and_then(|value| value.to_str().ok())
    {
        None => ClaimEcho::Absent,
        Some(rur) if rur == session.ig_u_rur => ClaimEcho::Matches,
        Some(_) => ClaimEcho::Differs,
    };
    facts.ig_u_rur = Some(rur_echo);
    if rur_echo != ClaimEcho::Matches {
        facts.set_ig_u_rur = Some(session.ig_u_rur.clone());
    }
    let stale = session.check_rotated(
        &settings,
        now,
        sent_csrftoken.filter(|_| caller.via_cookie && *method == Method::POST),
        sent_claim,
    );
    let echo = match sent_claim {
        None => ClaimEcho::Absent,
        Some(claim) if claim == caller.claim => ClaimEcho::Matches,
        Some(_) => ClaimEcho::Differs,
    };
    facts.claim = Some(ClaimFacts {
        echo,
        claim: caller.claim.clone(),
    });
    stale?;
    let account = world.account(caller.pk)?;
    if account.checkpoint {
        return Err(SimError::CheckpointRequired { pk: caller.pk });
    }
    if account.challenge {
        return Err(SimError::ChallengeRequired { pk: caller.pk });
    }
    world.admit_session_request(&caller.session, caller.pk)?;
    if *method == Method::POST && caller.via_cookie {
        let header = headers
            .get("x-csrftoken")
            .and_then(|value| value.to_str().ok());
        let csrf_ok = header.is_some() && header == cookies.get("csrftoken").map(String::as_str);
        facts.csrf_ok = Some(csrf_ok);
        if !csrf_ok {
            return Err(SimError::CsrfMismatch);
        }
    }
    let viewer = Viewer {
        pk: caller.pk,
        session: &caller.session,
    };
    let mut body = handler(&mut world, &viewer)?;
    world.finish_response(&caller.session, &mut body);
    Ok(body)
}

pub(crate) fn respond(result: Result<Value, SimError>, facts: RequestFacts) -> Response {
    let mut response = match result {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(error) => error_response(&error),
    };
    response.extensions_mut().insert(facts);
    response
}

/// `/api/v1/*rest`.
pub(crate) async fn api(
    State(shared): State<SharedWorld>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = if method == Method::POST {
        parse_form(&body)
    } else {
        parse_query(&uri)
    };
    let mut facts = RequestFacts {
        form_fields: if method == Method::POST {
            let mut names: Vec<String> = params.keys().cloned().collect();
            names.sort();
            names
        } else {
            Vec::new()
        },
        ..RequestFacts::default()
    };
    let path = uri.path().to_owned();
    let encoding = BodyEncoding {
        form: headers
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded")),
        signed: method == Method::POST && is_signed(&body),
    };
    let result = from_the_app(&headers).and_then(|()| {
        guarded(&shared, &method, &headers, &mut facts, |world, caller| {
            route(world, caller, &method, &path, &params, encoding)
        })
    });
    respond(result, facts)
}

/// Instagram serves its private API to its own app only: the User-Agent must be the app's
/// (`Instagram 275.0.0.27.98 Android (...)`) and `X-IG-App-ID` must be sent, else 400
/// `useragent mismatch` (WRITE-FLOWS.md §8), before anything else is looked at.
fn from_the_app(headers: &HeaderMap) -> Result<(), SimError> {
    let user_agent = headers
        .get("user-agent")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let app_id = headers
        .get("x-ig-app-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if user_agent.starts_with("Instagram ") && !app_id.trim().is_empty() {
        Ok(())
    } else {
        Err(SimError::UserAgentMismatch)
    }
}

/// How a POST body came: form-encoded (by its content type), and signed
/// (`signed_body=SIGNATURE.<json>`).
#[derive(Debug, Clone, Copy)]
struct BodyEncoding {
    form: bool,
    signed: bool,
}

fn is_signed(body: &[u8]) -> bool {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .is_ok_and(|pairs| pairs.iter().any(|(name, _)| name == "signed_body"))
}

fn route(
    world: &mut World,
    caller: &Viewer<'_>,
    method: &Method,
    path: &str,
    params: &Params,
    encoding: BodyEncoding,
) -> Result<Value, SimError> {
    let viewer = caller.pk;
    let relative = path.trim_start_matches("/api/v1/");
    let segments: Vec<&str> = relative
        .split('/')
        .filter(|part| !part.is_empty())
        .collect();
    let get = *method == Method::GET;
    let post = *method == Method::POST;
    match segments.as_slice() {
        ["accounts", "current_user"] if get => Ok(render::current_user(world, viewer)),
        ["direct_v2", "inbox"] if get => inbox(world, caller, params, InboxFolder::Inbox),
        ["direct_v2", "pending_inbox"] if get => inbox(world, caller, params, InboxFolder::Pending),
        ["direct_v2", "spam_inbox"] if get => inbox(world, caller, params, InboxFolder::Spam),
        ["direct_v2", "threads", "get_by_participants"] if get => {
            // With no such thread yet, Instagram answers without a `thread` key.
            let recipients = pk_list(required(params, "recipient_users")?)?;
            match world.find_thread_with(viewer, &recipients)? {
                Some(thread_id) => {
                    let thread = thread_page(world, caller, &thread_id, params)?;
                    Ok(json!({"thread": thread, "status": "ok"}))
                }
                None => Ok(json!({"status": "ok"})),
            }
        }
        ["direct_v2", "threads", "broadcast", kind] if post => {
            broadcast(world, caller, kind, params, encoding)
        }
        ["direct_v2", "threads", thread_id] if get => {
            let thread = thread_page(world, caller, thread_id, params)?;
            Ok(json!({"thread": thread, "status": "ok"}))
        }
        ["direct_v2", "threads", thread_id, "items", item_id, "seen"] if post => {
            world.mark_seen(thread_id, viewer, item_id_param(item_id)?)?;
            let mut body = render::fixture("item_seen");
            body["payload"]["timestamp"] = json!((now_ms() * 1000).to_string());
            Ok(body)
        }
        ["direct_v2", "threads", thread_id, "items", item_id, "edit"] if post => {
            let item_id = item_id_param(item_id)?;
            // The app names the edited message by its client_context too; a wrong one
            // does not name this message.
            if let Some(original) = params
                .get("original_message_client_context")
                .filter(|context| !context.is_empty())
            {
                let item = world.member_thread(thread_id, viewer)?.item(item_id)?;
                if &item.client_context != original {
                    return Err(SimError::ItemNotFound {
                        thread_id: (*thread_id).to_owned(),
                        item_id: item_id.to_string(),
                    });
                }
            }
            world.edit_text(thread_id, item_id, Some(viewer), required(params, "body")?)?;
            Ok(json!({"status": "ok"}))
        }
        ["direct_v2", "threads", thread_id, "items", item_id, "delete"] if post => {
            world.unsend(thread_id, item_id_param(item_id)?, Some(viewer))?;
            Ok(json!({"status": "ok"}))
        }
        ["direct_v2", "threads", thread_id, verb] if post => {
            thread_verb(world, viewer, thread_id, verb, params)
        }
        ["direct_v2", "create_group_thread"] if post => {
            if !encoding.signed {
                return Err(SimError::SignatureRequired);
            }
            let recipients = pk_list(required(params, "recipient_users")?)?;
            let title = params
                .get("thread_title")
                .map(String::as_str)
                .filter(|title| !title.is_empty());
            let thread_id = world.create_group(viewer, &recipients, title)?;
            let mut body = thread_page(world, caller, &thread_id, &Params::new())?;
            body["status"] = json!("ok");
            Ok(body)
        }
        ["direct_v2", "fetch_and_subscribe_presence"] if post => {
            let pks = pk_list(required(params, "request_data")?)?;
            let mut presence = serde_json::Map::new();
            for pk in pks {
                let state = world.account(pk)?.presence;
                presence.insert(pk.to_string(), render::presence_entry(true, pk, state));
            }
            Ok(json!({"user_presence": presence, "status": "ok"}))
        }
        ["direct_v2", "get_presence" | "get_presence_active_now"] if get => {
            let mut presence = serde_json::Map::new();
            for pk in contacts(world, viewer) {
                let state = world.account(pk)?.presence;
                presence.insert(pk.to_string(), render::presence_entry(false, pk, state));
            }
            Ok(json!({"user_presence": presence, "status": "ok"}))
        }
        ["direct_v2", "search_secondary"] if get => {
            message_search(world, viewer, required(params, "query")?)
        }
        ["users", "search"] if get => {
            let query = required(params, "q")?.to_lowercase();
            let users: Vec<Value> = world
                .accounts
                .values()
                .filter(|account| account.pk != viewer)
                .filter(|account| {
                    account.username.to_lowercase().contains(&query)
                        || account.full_name.to_lowercase().contains(&query)
                })
                .map(|account| account.pk)
                .collect::<Vec<_>>()
                .into_iter()
                .map(|pk| render::search_user(world, pk))
                .collect();
            Ok(
                json!({"num_results": users.len(), "users": users, "has_more": false, "rank_token": format!("{}|{}", now_ms(), viewer), "status": "ok"}),
            )
        }
        ["users", username, "usernameinfo"] if get => {
            let pk = world
                .account_by_username(username)
                .ok_or_else(|| SimError::UserNotFound {
                    user: (*username).to_owned(),
                })?
                .pk;
            Ok(render::user_info(world, pk))
        }
        ["users", pk, "info"] if get => {
            let pk: u64 = pk.parse().map_err(|_| SimError::UserNotFound {
                user: (*pk).to_owned(),
            })?;
            world.account(pk)?;
            Ok(render::user_info(world, pk))
        }
        _ => Err(SimError::NoEndpoint {
            method: method.to_string(),
            path: path.to_owned(),
        }),
    }
}

/// Everyone who shares a thread with `viewer`.
fn contacts(world: &World, viewer: u64) -> Vec<u64> {
    let mut pks: Vec<u64> = world
        .threads
        .values()
        .filter(|thread| thread.members.contains(&viewer))
        .flat_map(|thread| thread.members.iter().copied())
        .filter(|pk| *pk != viewer)
        .collect();
    pks.sort_unstable();
    pks.dedup();
    pks
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum InboxFolder {
    Inbox,
    Pending,
    Spam,
}

impl InboxFolder {
    fn name(self) -> &'static str {
        match self {
            InboxFolder::Inbox => "inbox",
            InboxFolder::Pending => "pending",
            InboxFolder::Spam => "spam",
        }
    }
}

/// The `cursor` parameter, resolved: `None` for the newest page; a cursor that is unknown,
/// foreign, expired or for another place is refused.
fn cursor_param(
    world: &World,
    caller: &Viewer<'_>,
    params: &Params,
) -> Result<Option<CursorTarget>, SimError> {
    let Some(token) = params.get("cursor").filter(|cursor| !cursor.is_empty()) else {
        return Ok(None);
    };
    world
        .cursors
        .resolve(caller.session, token, world.settings.cursor_ttl)
        .cloned()
        .map(Some)
        .map_err(|refusal| SimError::StaleCursor {
            reason: refusal.reason(),
        })
}

fn inbox(
    world: &mut World,
    caller: &Viewer<'_>,
    params: &Params,
    folder: InboxFolder,
) -> Result<Value, SimError> {
    let viewer = caller.pk;
    let limit = limit_param(params, "limit", 20)?;
    let message_limit = limit_param(params, "thread_message_limit", 10)?;
    let filter = params
        .get("selected_filter")
        .map(String::as_str)
        .unwrap_or("");
    let mut visible: Vec<&ThreadRecord> = world
        .threads
        .values()
        .filter(|thread| thread.members.contains(&viewer))
        .filter(|thread| !thread.items.is_empty())
        .filter(|thread| {
            let state = thread.state(viewer);
            match folder {
                InboxFolder::Inbox => !state.pending && !state.hidden,
                InboxFolder::Pending => state.pending && !state.hidden,
                InboxFolder::Spam => false,
            }
        })
        .collect();
    visible
        .sort_by_key(|thread| std::cmp::Reverse((thread.last_activity_us(), thread.thread_v2_id)));
    let unseen_count = visible
        .iter()
        .filter(|thread| thread.is_unread_for(viewer) || thread.state(viewer).marked_as_unread)
        .count();
    let pending_count = world
        .threads
        .values()
        .filter(|thread| {
            thread.members.contains(&viewer)
                && thread.state(viewer).pending
                && !thread.items.is_empty()
        })
        .count();
    let after = match cursor_param(world, caller, params)? {
        None => None,
        Some(CursorTarget::Inbox {
            folder: cursor_folder,
            bound,
        }) if cursor_folder == folder.name() => Some(bound),
        Some(_) => {
            return Err(SimError::StaleCursor {
                reason: CursorRefusal::Elsewhere.reason(),
            })
        }
    };
    let candidates: Vec<&ThreadRecord> = visible
        .into_iter()
        .filter(|thread| match filter {
            "unread" => thread.is_unread_for(viewer) || thread.state(viewer).marked_as_unread,
            "flagged" => false,
            _ => true,
        })
        .filter(|thread| {
            after.is_none_or(|bound| (thread.last_activity_us(), thread.thread_v2_id) < bound)
        })
        .collect();
    let size = page_size(limit, candidates.len(), &world.settings);
    let has_older = candidates.len() > size;
    let page: Vec<&ThreadRecord> = candidates.into_iter().take(size).collect();
    let bounds = |thread: &&ThreadRecord| (thread.last_activity_us(), thread.thread_v2_id);
    let first = page.first().map(bounds);
    let last = page.last().map(bounds);
    let oldest_cursor = match (has_older, last) {
        (true, Some(bound)) => {
            let target = CursorTarget::Inbox {
                folder: folder.name(),
                bound,
            };
            Some(
                world
                    .cursors
                    .issue(caller.session, target, world.settings.cursor_ttl),
            )
        }
        _ => None,
    };
    let threads = page
        .iter()
        .map(|thread| {
            let items: Vec<_> = thread.items.iter().rev().take(message_limit).collect();
            render::thread(
                world,
                thread,
                Some(viewer),
                &items,
                thread.items.len() > message_limit,
                false,
            )
        })
        .collect();
    Ok(render::inbox(
        world,
        viewer,
        InboxPage {
            threads,
            first,
            last,
            has_older,
            oldest_cursor,
            unseen_count,
            pending_count,
        },
    ))
}

/// One page of a thread: the newest items, or those strictly older (newer) than `cursor`.
fn thread_page(
    world: &World,
    caller: &Viewer<'_>,
    thread_id: &str,
    params: &Params,
) -> Result<Value, SimError> {
    let viewer = caller.pk;
    let thread = world.member_thread(thread_id, viewer)?;
    let limit = limit_param(params, "limit", 20)?;
    let cursor = match cursor_param(world, caller, params)? {
        None => None,
        Some(CursorTarget::Thread {
            thread_id: cursor_thread,
            item_id,
        }) if cursor_thread == thread.thread_id => Some(item_id),
        Some(_) => {
            return Err(SimError::StaleCursor {
                reason: CursorRefusal::Elsewhere.reason(),
            })
        }
    };
    let newer = params
        .get("direction")
        .is_some_and(|direction| direction == "newer");
    let settings = &world.settings;
    let (items, has_older, has_newer) = match (cursor, newer) {
        (Some(cursor), true) => {
            let above: Vec<_> = thread
                .items
                .iter()
                .filter(|item| item.item_id > cursor)
                .collect();
            let size = page_size(limit, above.len(), settings);
            let page: Vec<_> = above.iter().take(size).rev().copied().collect();
            let has_older = thread.items.iter().any(|item| item.item_id <= cursor);
            (page, has_older, above.len() > size)
        }
        (cursor, _) => {
            let below: Vec<_> = thread
                .items
                .iter()
                .rev()
                .filter(|item| cursor.is_none_or(|cursor| item.item_id < cursor))
                .collect();
            let has_newer =
                cursor.is_some_and(|cursor| thread.items.iter().any(|item| item.item_id >= cursor));
            let size = page_size(limit, below.len(), settings);
            let has_older = below.len() > size;
            (below.into_iter().take(size).collect(), has_older, has_newer)
        }
    };
    Ok(render::thread(
        world,
        thread,
        Some(viewer),
        &items,
        has_older,
        has_newer,
    ))
}

/// The thread a broadcast goes to: `thread_ids`/`thread_id`, or the thread with
/// `recipient_users` (created when needed). The flag says it was addressed by recipients.
fn broadcast_target(
    world: &mut World,
    viewer: u64,
    params: &Params,
) -> Result<(String, bool), SimError> {
    if let Some(ids) = params.get("thread_ids").or_else(|| params.get("thread_id")) {
        let thread_id = id_list(ids)
            .into_iter()
            .next()
            .ok_or(SimError::BadParameter { name: "thread_ids" })?;
        world.member_thread(&thread_id, viewer)?;
        return Ok((thread_id, false));
    }
    let recipients = params
        .get("recipient_users")
        .filter(|recipients| !recipients.is_empty())
        .ok_or(SimError::BadSend {
            message: "Need to specify thread ID or recipient users",
        })?;
    Ok((world.thread_with(viewer, &pk_list(recipients)?)?, true))
}

fn item_ack(
    world: &World,
    thread_id: &str,
    viewer: u64,
    item_id: u128,
    by_recipients: bool,
) -> Result<Value, SimError> {
    let thread = world.thread(thread_id)?;
    let item = thread.item(item_id)?;
    let participant_ids: Vec<String> = thread
        .members
        .iter()
        .filter(|pk| **pk != viewer)
        .map(u64::to_string)
        .collect();
    let mut payload = json!({
        "client_context": item.client_context,
        "item_id": item.item_id.to_string(),
        "timestamp": item.timestamp_us.to_string(),
        "thread_id": thread.thread_id,
    });
    if by_recipients {
        payload["canonical"] = json!(!thread.is_group);
    }
    let mut body = render::fixture("broadcast_text");
    body["payload"] = payload;
    body["message_metadata"] = json!([{
        "client_context": item.client_context,
        "item_id": item.item_id.to_string(),
        "timestamp": item.timestamp_us.to_string(),
        "thread_id": thread.thread_id,
        "participant_ids": participant_ids,
    }]);
    Ok(body)
}

/// The broadcasts there are (`direct_v2/threads/broadcast/{kind}/`).
const BROADCAST_KINDS: &[&str] = &[
    "text",
    "link",
    "like",
    "reaction",
    "photo_attachment",
    "video_attachment",
    "voice_attachment",
    "indicate_activity",
];

/// What every broadcast's form must hold, as the app sends it (WRITE-FLOWS.md §7): a
/// form-encoded body with `action=send_item` (`indicate_activity` for typing), `_uuid`, and
/// a numeric `client_context` that `mutation_token` and `offline_threading_id` repeat
/// (typing sends only the `client_context`). Returns the `client_context`.
fn check_send_form(
    kind: &str,
    params: &Params,
    encoding: BodyEncoding,
) -> Result<String, SimError> {
    let refuse = |message| Err(SimError::BadSend { message });
    if !encoding.form {
        return refuse("Invalid request: the body must be form-encoded");
    }
    let typing = kind == "indicate_activity";
    let action = params.get("action").map(String::as_str);
    let action_ok = if typing {
        action.is_none_or(|action| action == "indicate_activity")
    } else {
        action == Some("send_item")
    };
    if !action_ok {
        return refuse("Invalid action");
    }
    if params.get("_uuid").is_none_or(|uuid| uuid.is_empty()) {
        return refuse("Missing _uuid");
    }
    let context = params.get("client_context").cloned().unwrap_or_default();
    let numeric = !context.is_empty()
        && context.bytes().all(|byte| byte.is_ascii_digit())
        && context.parse::<u64>().is_ok();
    if !numeric {
        return refuse("Invalid client_context");
    }
    for twin in ["mutation_token", "offline_threading_id"] {
        let value = params.get(twin);
        let matches = if typing {
            value.is_none_or(|value| *value == context)
        } else {
            value == Some(&context)
        };
        if !matches {
            return refuse("client_context, mutation_token and offline_threading_id differ");
        }
    }
    Ok(context)
}

fn broadcast(
    world: &mut World,
    caller: &Viewer<'_>,
    kind: &str,
    params: &Params,
    encoding: BodyEncoding,
) -> Result<Value, SimError> {
    let viewer = caller.pk;
    if !BROADCAST_KINDS.contains(&kind) {
        return Err(SimError::NoEndpoint {
            method: "POST".into(),
            path: format!("/api/v1/direct_v2/threads/broadcast/{kind}/"),
        });
    }
    let context = check_send_form(kind, params, encoding)?;
    if kind == "indicate_activity" {
        let thread_id = id_list(required(params, "thread_id")?)
            .into_iter()
            .next()
            .ok_or(SimError::BadParameter { name: "thread_id" })?;
        let status =
            required(params, "activity_status")?
                .parse()
                .map_err(|_| SimError::BadParameter {
                    name: "activity_status",
                })?;
        world.set_typing(&thread_id, viewer, status)?;
        let mut body = render::fixture("broadcast_indicate_activity");
        body["payload"]["client_context"] = json!(context);
        return Ok(body);
    }
    world.admit_send(caller.session, viewer)?;
    let (thread_id, by_recipients) = broadcast_target(world, viewer, params)?;
    let item_kind = match kind {
        "text" => json!({"item_type": "text", "text": params
            .get("text")
            .filter(|text| !text.is_empty())
            .ok_or(SimError::BadSend { message: "Text is missing" })?}),
        "link" => {
            let text = required(params, "link_text")?;
            let url = id_list(params.get("link_urls").map_or("", String::as_str))
                .into_iter()
                .next();
            json!({"item_type": "link", "text": text, "url": url})
        }
        "like" => json!({"item_type": "like"}),
        "photo_attachment" | "video_attachment" | "voice_attachment" => {
            let voice = (kind == "voice_attachment").then(|| {
                let waveform = params
                    .get("waveform")
                    .and_then(|text| serde_json::from_str(text).ok())
                    .unwrap_or_else(|| json!([]));
                let frequency = params
                    .get("waveform_sampling_frequency_hz")
                    .and_then(|text| text.parse::<u64>().ok())
                    .unwrap_or(10);
                (waveform, json!(frequency))
            });
            let wanted = UploadKind::for_broadcast(kind)
                .ok_or(SimError::BadParameter { name: "attachment" })?;
            world.attachment_kind(viewer, required(params, "attachment_fbid")?, wanted, voice)?
        }
        "reaction" => {
            let item_id = item_id_param(required(params, "item_id")?)?;
            let deleted = params
                .get("reaction_status")
                .is_some_and(|status| status == "deleted");
            if deleted {
                world.unreact(&thread_id, item_id, viewer)?;
            } else {
                let emoji = params
                    .get("emoji")
                    .filter(|emoji| !emoji.is_empty())
                    .cloned();
                world.react(&thread_id, item_id, viewer, emoji, Some(context.clone()))?;
            }
            let thread = world.thread(&thread_id)?;
            let mut body = render::fixture("broadcast_text");
            body["payload"] = json!({
                "client_context": context,
                "item_id": item_id.to_string(),
                "timestamp": (now_ms() * 1000).to_string(),
                "thread_id": thread.thread_id,
            });
            if let Some(object) = body.as_object_mut() {
                object.shift_remove("message_metadata");
            }
            return Ok(body);
        }
        _ => {
            return Err(SimError::NoEndpoint {
                method: "POST".into(),
                path: format!("/api/v1/direct_v2/threads/broadcast/{kind}/"),
            })
        }
    };
    let context = Some(context);
    let replied_to = match params.get("replied_to_item_id").filter(|id| !id.is_empty()) {
        Some(id) => Some(item_id_param(id)?),
        None => None,
    };
    let item_id = world.append_item(&thread_id, viewer, item_kind, context, replied_to)?;
    item_ack(world, &thread_id, viewer, item_id, by_recipients)
}

fn thread_verb(
    world: &mut World,
    viewer: u64,
    thread_id: &str,
    verb: &str,
    params: &Params,
) -> Result<Value, SimError> {
    match verb {
        "mute" => world.update_member_state(thread_id, viewer, |state| state.muted = true)?,
        "unmute" => world.update_member_state(thread_id, viewer, |state| state.muted = false)?,
        "hide" => world.update_member_state(thread_id, viewer, |state| state.hidden = true)?,
        "mark_unread" => {
            world.update_member_state(thread_id, viewer, |state| state.marked_as_unread = true)?
        }
        "approve" => world.set_pending(thread_id, viewer, false)?,
        "decline" => world.update_member_state(thread_id, viewer, |state| {
            state.pending = false;
            state.hidden = true;
        })?,
        "leave" => world.leave(thread_id, viewer)?,
        "update_title" => {
            world.update_title(thread_id, viewer, required(params, "title")?)?;
            return thread_with_newest(world, viewer, thread_id);
        }
        "add_user" => {
            let users = pk_list(required(params, "user_ids")?)?;
            world.add_users(thread_id, viewer, &users)?;
            return thread_with_newest(world, viewer, thread_id);
        }
        _ => {
            return Err(SimError::NoEndpoint {
                method: "POST".into(),
                path: format!("/api/v1/direct_v2/threads/{thread_id}/{verb}/"),
            })
        }
    }
    Ok(json!({"status": "ok"}))
}

/// `{thread, status}` with only the newest item, as update_title/add_user answer.
fn thread_with_newest(world: &World, viewer: u64, thread_id: &str) -> Result<Value, SimError> {
    let thread = world.member_thread(thread_id, viewer)?;
    let items: Vec<_> = thread.items.iter().rev().take(1).collect();
    let has_older = thread.items.len() > 1;
    Ok(
        json!({"thread": render::thread(world, thread, Some(viewer), &items, has_older, false), "status": "ok"}),
    )
}

fn message_search(world: &World, viewer: u64, query: &str) -> Result<Value, SimError> {
    let needle = query.to_lowercase();
    let template = render::fixture("search_secondary");
    let result_template = &template["message_search_results"]["message_search_result_items"][0];
    let mut results = Vec::new();
    for thread in world
        .threads
        .values()
        .filter(|thread| thread.members.contains(&viewer))
    {
        for item in thread.items.iter().rev() {
            let text = match item.item_type.as_str() {
                "text" => item.payload.as_str().unwrap_or(""),
                "link" => item.payload["text"].as_str().unwrap_or(""),
                _ => continue,
            };
            let Some(offset) = text.to_lowercase().find(&needle) else {
                continue;
            };
            let mut result = result_template.clone();
            let info = &mut result["matched_message_info"];
            info["context_line"] = json!(text);
            info["item_info"] = json!({
                "item_id": item.item_id.to_string(),
                "sender_id": item.user_id.to_string(),
                "user_id": item.user_id,
                "text": text,
                "timestamp": item.timestamp_us,
                "item_type": item.item_type,
                "matched_message_range_data": [{"offset": text[..offset].chars().count(), "length": query.chars().count()}],
            });
            let page = render::thread(world, thread, Some(viewer), &[], false, false);
            let summary = &mut result["thread"];
            for key in [
                "thread_id",
                "thread_v2_id",
                "users",
                "named",
                "thread_title",
                "pending",
                "thread_type",
                "viewer_id",
                "is_group",
            ] {
                summary[key] = page[key].clone();
            }
            results.push(result);
        }
    }
    let mut body = template.clone();
    let count = results.len();
    body["message_search_results"]["message_search_result_items"] = Value::Array(results);
    body["message_search_results"]["has_more"] = json!(false);
    body["message_search_results"]["next_offset"] = json!(count);
    Ok(body)
}

/// `POST /rupload_igphoto/{name}` and `/rupload_igvideo/{name}`: the legacy upload, kept as
/// Instagram still answers it (WRITE-FLOWS.md §2 "Legacy flow"): `{upload_id,
/// xsharing_nonces, status}` for a photo, `{xsharing_nonces, status}` for a video, and no
/// `media_id`. The broadcasts that took an `upload_id` (`configure_photo/`, ...) are retired,
/// so nothing can be sent from it: a client must use the upload host (`messenger_*`).
pub(crate) async fn rupload(
    State(shared): State<SharedWorld>,
    Path(upload_name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let video = uri.path().starts_with("/rupload_igvideo/");
    let mut facts = RequestFacts::default();
    let result = guarded(&shared, &method, &headers, &mut facts, |_world, _viewer| {
        if body.is_empty() {
            return Err(SimError::BadParameter { name: "body" });
        }
        if video {
            return Ok(json!({"xsharing_nonces": {}, "status": "ok"}));
        }
        let upload_id = headers
            .get("x-instagram-rupload-params")
            .and_then(|value| value.to_str().ok())
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .and_then(|params| match &params["upload_id"] {
                Value::String(id) => Some(id.clone()),
                Value::Number(id) => Some(id.to_string()),
                _ => None,
            })
            .unwrap_or_else(|| {
                upload_name
                    .split('_')
                    .next()
                    .unwrap_or(&upload_name)
                    .to_owned()
            });
        Ok(json!({"upload_id": upload_id, "xsharing_nonces": {}, "status": "ok"}))
    });
    respond(result, facts)
}

/// `GET /media/{name}`: stored bytes with their content type, for a URL whose signature
/// holds and has not expired (no session needed, like the CDN); else 403.
pub(crate) async fn media(
    State(shared): State<SharedWorld>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let world = crate::lock(&shared);
    if let Err(refusal) =
        signing::verify(&name, query.as_deref(), world.media_secret, now_ms() / 1000)
    {
        return (StatusCode::FORBIDDEN, refusal.text()).into_response();
    }
    match world.blobs.get(&name) {
        Some(blob) => (
            StatusCode::OK,
            [("content-type", blob.content_type.clone())],
            blob.bytes.clone(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_list_reads_quoted_unquoted_and_nested_lists() {
        assert_eq!(
            id_list("[340282366841710300949128137443944319108]"),
            vec!["340282366841710300949128137443944319108"]
        );
        assert_eq!(id_list("[\"1\", \"2\"]"), vec!["1", "2"]);
        assert_eq!(id_list("[[1,2]]"), vec!["1", "2"]);
    }

    #[test]
    fn signed_body_fields_are_unpacked() {
        let body = "signed_body=SIGNATURE.%7B%22recipient_users%22%3A%5B%221%22%5D%2C%22thread_title%22%3A%22t%22%2C%22n%22%3A3%7D";
        let params = parse_form(body.as_bytes());
        assert_eq!(params["recipient_users"], "[\"1\"]");
        assert_eq!(params["thread_title"], "t");
        assert_eq!(params["n"], "3");
    }
}
