//! Reference checks: every name a template or expression reads must exist
//! where it is evaluated. `params.X` must be a declared parameter, `vars.X` a
//! var defined before, `steps.X` an earlier step, `context.X` a value of the
//! response's `context:`, and a bare name a known root (or, in `root:` and
//! `context:`, a key of the response body). The names come from walking the
//! syntax tree ([`Template::referenced_roots`], [`Expr::referenced_roots`]).

use crate::connector::expr::{Expr, RootRef};
use crate::connector::mapping::{ExprRole, ResponseMapping};
use crate::connector::template::Template;

use super::Problems;

/// The fields of `device` templates see (see `Credentials::device_vars`).
const DEVICE_FIELDS: &[&str] = &["uuid", "phone_id", "android_id", "user_agent"];
/// The fields of `api` templates see (see `BaseUrls::vars`).
const API_FIELDS: &[&str] = &["base_url", "web_base_url", "upload_base_url"];

/// One root name and what may follow it.
#[derive(Debug, Clone)]
struct Root {
    name: &'static str,
    /// What a field of this root is called in messages (`parameter`).
    what: &'static str,
    /// Introduces the list of known fields in messages (`declared`).
    known_as: &'static str,
    /// The fields that exist; `None` when any field may (unknown at load time).
    fields: Option<Vec<String>>,
}

/// The names that can be read at one place of a spec.
#[derive(Debug, Clone)]
pub(super) struct Names {
    roots: Vec<Root>,
}

impl Names {
    /// `auth`, `device` and `api`, which every request can read. `auth_state`
    /// holds the names response hooks store (besides `cookies`), or `None`
    /// when the `api:` section did not load and they are unknown.
    pub(super) fn credentials(auth_state: Option<&[String]>) -> Names {
        let auth_fields = auth_state.map(|state| {
            std::iter::once("cookies".to_owned())
                .chain(state.iter().cloned())
                .collect()
        });
        Names {
            roots: vec![
                Root {
                    name: "auth",
                    what: "auth value",
                    known_as: "cookies and what response hooks store",
                    fields: auth_fields,
                },
                Root {
                    name: "device",
                    what: "device value",
                    known_as: "known",
                    fields: Some(owned(DEVICE_FIELDS)),
                },
                api_root(),
            ],
        }
    }

    /// Only `api` (the login steps see the base URLs and nothing else).
    pub(super) fn api_only() -> Names {
        Names {
            roots: vec![api_root()],
        }
    }

    /// Adds `params` with the declared parameter names.
    pub(super) fn with_params(self, names: Vec<String>) -> Names {
        self.with("params", "parameter", "declared", names)
    }

    /// Adds `vars` with the vars defined so far.
    pub(super) fn with_vars(self, names: Vec<String>) -> Names {
        self.with("vars", "var", "defined before this point", names)
    }

    /// Adds `steps` with the names of the earlier steps.
    pub(super) fn with_steps(self, names: Vec<String>) -> Names {
        self.with("steps", "step", "earlier steps", names)
    }

    /// Adds `status` (a `retry:` condition's HTTP status: a number, no fields).
    pub(super) fn with_status(self) -> Names {
        self.with("status", "field of the status", "a number has", Vec::new())
    }

    /// Checks a `retry:` condition: names, with `.x` reading the answer's body.
    pub(super) fn check_when(
        &self,
        problems: &mut Problems,
        scope: &str,
        field: &str,
        when: &Expr,
    ) {
        self.check_expr(problems, scope, field, when, false);
    }

    /// Adds `root` with any field allowed: its definitions did not load, and
    /// reporting every use of them would bury the real problem.
    pub(super) fn with_unchecked(mut self, root: &str) -> Names {
        for known in &mut self.roots {
            if known.name == root {
                known.fields = None;
            }
        }
        self
    }

    fn with(
        mut self,
        name: &'static str,
        what: &'static str,
        known_as: &'static str,
        fields: Vec<String>,
    ) -> Names {
        self.roots.retain(|root| root.name != name);
        self.roots.push(Root {
            name,
            what,
            known_as,
            fields: Some(fields),
        });
        self
    }

    /// Checks a template; each problem names `field` and the template.
    pub(super) fn check_template(
        &self,
        problems: &mut Problems,
        scope: &str,
        field: &str,
        template: &Template,
    ) {
        for (message, hint) in self.unknown(&template.referenced_roots(), false) {
            problems.push(
                scope,
                field,
                format!("{message} in '{}' ({hint})", template.source()),
            );
        }
    }

    /// Checks every expression of a compiled `response:` section found at `field`.
    pub(super) fn check_response(
        &self,
        problems: &mut Problems,
        scope: &str,
        field: &str,
        response: &ResponseMapping,
    ) {
        let context: Vec<String> = response.context_names().map(str::to_owned).collect();
        // `context` exists only once the section's `context:` was evaluated.
        let with_context = if context.is_empty() {
            self.clone()
        } else {
            self.clone().with(
                "context",
                "context value",
                "this response's `context:` defines",
                context,
            )
        };
        for mapped in response.expressions() {
            let (names, body_keys) = match mapped.role {
                ExprRole::Context => (self, true),
                ExprRole::Root => (&with_context, true),
                ExprRole::Mapping => (&with_context, false),
            };
            names.check_expr(
                problems,
                scope,
                &format!("{field}.{}", mapped.field),
                mapped.expr,
                body_keys,
            );
        }
    }

    fn check_expr(
        &self,
        problems: &mut Problems,
        scope: &str,
        field: &str,
        expr: &Expr,
        body_keys: bool,
    ) {
        for (message, hint) in self.unknown(&expr.referenced_roots(), body_keys) {
            problems.push(
                scope,
                field,
                format!("{message} in '{}' ({hint})", expr.source()),
            );
        }
    }

    /// A message and a hint for each reference that does not exist. With
    /// `body_keys`, a name that is not a root is a key of the response body.
    fn unknown(&self, references: &[RootRef<'_>], body_keys: bool) -> Vec<(String, String)> {
        let mut messages = Vec::new();
        for reference in references {
            let Some(root) = self.roots.iter().find(|root| root.name == reference.name) else {
                if !body_keys {
                    let known: Vec<&str> = self.roots.iter().map(|root| root.name).collect();
                    messages.push((
                        format!("unknown name `{}`", reference.name),
                        format!("known here: {}", known.join(", ")),
                    ));
                }
                continue;
            };
            let (Some(field), Some(fields)) = (reference.field, &root.fields) else {
                continue;
            };
            if !fields.iter().any(|known| known == field) {
                let known = if fields.is_empty() {
                    "none".to_owned()
                } else {
                    fields.join(", ")
                };
                messages.push((
                    format!("unknown {} `{field}`", root.what),
                    format!("{}: {known}", root.known_as),
                ));
            }
        }
        messages
    }
}

/// `api`: the base URLs in use.
fn api_root() -> Root {
    Root {
        name: "api",
        what: "api value",
        known_as: "known",
        fields: Some(owned(API_FIELDS)),
    }
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}
