//! The layer every non-control request passes: scripted faults (status, body, delay,
//! extra headers, truncated JSON, a dropped connection; before or after the request is
//! carried out), the `x-ig-set-www-claim`, `ig-set-ig-u-rur` and rotated-cookie `Set-Cookie`
//! headers, and the request log.

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::api::{json_response, parse_cookies};
use crate::render::error_body;
use crate::world::{ClaimEcho, DeviceHeaders, Fault, RequestLogEntry};
use crate::SharedWorld;

/// What a handler learned about a request, handed to the log through response extensions.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestFacts {
    pub pk: Option<u64>,
    pub csrf_ok: Option<bool>,
    pub claim: Option<ClaimFacts>,
    pub form_fields: Vec<String>,
    /// `Set-Cookie` values of the answer (a rotated csrftoken the client has not sent yet).
    pub set_cookies: Vec<String>,
    /// The session's routing hint, sent in `ig-set-ig-u-rur` until the client echoes it
    /// in `ig-u-rur`.
    pub set_ig_u_rur: Option<String>,
    /// Whether the request's `ig-u-rur` echoed the routing hint.
    pub ig_u_rur: Option<ClaimEcho>,
}

#[derive(Debug, Clone)]
pub(crate) struct ClaimFacts {
    pub echo: ClaimEcho,
    /// The session's claim, sent in `x-ig-set-www-claim` until the client echoes it.
    pub claim: String,
}

/// Bodies far larger than any simulated response are not expected; this only bounds memory.
const MAX_BODY: usize = 64 * 1024 * 1024;

pub(crate) async fn gate(
    State(shared): State<SharedWorld>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if path.starts_with("/_sim") {
        return next.run(request).await;
    }
    let method = request.method().to_string();
    let query = request.uri().query().unwrap_or("").to_owned();
    let mut headers: Vec<String> = request
        .headers()
        .keys()
        .map(|name| name.as_str().to_owned())
        .collect();
    headers.sort();
    headers.dedup();
    let mut cookies: Vec<String> = parse_cookies(request.headers()).into_keys().collect();
    cookies.sort();
    let device = device_headers(request.headers());

    let fault = crate::lock(&shared).take_fault(&method, &path);
    let (mut response, dropped) = match &fault {
        None => (next.run(request).await, false),
        Some(fault) if fault.after_write => {
            let carried_out = next.run(request).await;
            if !fault.delay.is_zero() {
                tokio::time::sleep(fault.delay).await;
            }
            lost_answer(fault, carried_out).await
        }
        Some(fault) => {
            if !fault.delay.is_zero() {
                tokio::time::sleep(fault.delay).await;
            }
            if fault.drop_connection {
                (dropped_connection(), true)
            } else if let Some(status) = fault.status {
                (
                    apply_fault_extras(fault, fault_response(fault, status)).await,
                    false,
                )
            } else {
                let served = next.run(request).await;
                (apply_fault_extras(fault, served).await, false)
            }
        }
    };
    let facts = response
        .extensions()
        .get::<RequestFacts>()
        .cloned()
        .unwrap_or_default();
    let www_claim = facts
        .claim
        .as_ref()
        .map_or(ClaimEcho::Absent, |claim| claim.echo);
    if let Some(claim) = &facts.claim {
        if claim.echo != ClaimEcho::Matches {
            if let Ok(value) = HeaderValue::from_str(&claim.claim) {
                response.headers_mut().insert("x-ig-set-www-claim", value);
            }
        }
    }
    if let Some(rur) = &facts.set_ig_u_rur {
        if let Ok(value) = HeaderValue::from_str(rur) {
            response.headers_mut().insert("ig-set-ig-u-rur", value);
        }
    }
    for cookie in &facts.set_cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            response.headers_mut().append("set-cookie", value);
        }
    }
    crate::lock(&shared).log_request(RequestLogEntry {
        method,
        path,
        query,
        headers,
        cookies,
        form_fields: facts.form_fields,
        csrf_ok: facts.csrf_ok,
        www_claim,
        ig_u_rur: facts.ig_u_rur.unwrap_or(ClaimEcho::Absent),
        pk: facts.pk,
        device,
        status: if dropped {
            0
        } else {
            response.status().as_u16()
        },
    });
    response
}

/// The values of a request's device headers.
fn device_headers(headers: &axum::http::HeaderMap) -> DeviceHeaders {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    DeviceHeaders {
        device_id: header("x-ig-device-id"),
        family_device_id: header("x-ig-family-device-id"),
        android_id: header("x-ig-android-id"),
        user_agent: header("user-agent"),
    }
}

/// The answer to a request that was carried out before its fault struck: the real one
/// (with the fault's extras), the fault's status and body, or none at all. The handler's
/// facts are kept so the log says who wrote. The flag says the connection is dropped.
async fn lost_answer(fault: &Fault, carried_out: Response) -> (Response, bool) {
    let facts = carried_out.extensions().get::<RequestFacts>().cloned();
    let (mut response, dropped) = if fault.drop_connection {
        (dropped_connection(), true)
    } else if let Some(status) = fault.status {
        (
            apply_fault_extras(fault, fault_response(fault, status)).await,
            false,
        )
    } else {
        (apply_fault_extras(fault, carried_out).await, false)
    };
    if let Some(facts) = facts {
        response.extensions_mut().insert(facts);
    }
    (response, dropped)
}

/// A response whose body fails before its first byte: hyper then closes the connection
/// without writing the buffered status line, so the client sees the connection end with no
/// answer at all (as when a proxy or the network drops it).
fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "instagram-sim fault: connection dropped",
        ))
    });
    Response::new(Body::from_stream(failing))
}

fn fault_response(fault: &Fault, status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match &fault.body {
        Some(body) => Response::builder()
            .status(status)
            .header("content-type", "application/json; charset=utf-8")
            .body(Body::from(body.clone()))
            .unwrap_or_default(),
        None => {
            let body = match status {
                StatusCode::TOO_MANY_REQUESTS => error_body("rate_limit_429"),
                StatusCode::FORBIDDEN => error_body("login_required_403"),
                _ => error_body("server_error_500"),
            };
            json_response(status, &body)
        }
    }
}

/// Adds the fault's headers and, when asked, cuts the body in half.
async fn apply_fault_extras(fault: &Fault, response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    for (name, value) in &fault.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            parts.headers.insert(name, value);
        }
    }
    if !fault.malformed_body {
        return Response::from_parts(parts, body);
    }
    let bytes = to_bytes(body, MAX_BODY).await.unwrap_or_default();
    let truncated = bytes.slice(..bytes.len() / 2);
    parts.headers.remove("content-length");
    Response::from_parts(parts, Body::from(truncated))
}
