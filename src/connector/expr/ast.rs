//! The syntax tree the parser builds and the evaluator walks.

use serde_json::Value;

use super::filters::Filter;

/// One node of an expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Literal(Value),
    /// A string literal with `{{ }}` parts, joined as text at evaluation.
    Interpolated(Vec<StrPiece>),
    Path {
        root: PathRoot,
        segments: Vec<Segment>,
    },
    Not(Box<Node>),
    Binary {
        op: BinaryOp,
        left: Box<Node>,
        right: Box<Node>,
    },
    Ternary {
        condition: Box<Node>,
        then: Box<Node>,
        otherwise: Box<Node>,
    },
    /// `input | stage` where the stage is a path: it is evaluated with the input as current value.
    Pipe {
        input: Box<Node>,
        stage: Box<Node>,
    },
    /// `input | filter: args`; the arguments are evaluated in the enclosing scope.
    Filter {
        input: Box<Node>,
        filter: Filter,
        args: Vec<Node>,
    },
    /// A zero-argument generator such as `generate_uuid`: a fresh value on every evaluation.
    Generate(Generator),
}

/// The zero-argument functions: each gives a fresh value on every evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Generator {
    /// `generate_uuid`: a UUID v4.
    Uuid,
    /// `generate_mutation_token`: a random 19-digit decimal in
    /// 6800011111111111111..=6800099999999999999, the form Instagram's Android app (and
    /// instagrapi) sends as `client_context`/`mutation_token`/`offline_threading_id`.
    MutationToken,
    /// `now_ms`: the current time in milliseconds since the epoch (a number).
    NowMs,
}

impl Generator {
    /// The reserved names, as written in expressions.
    pub(crate) const ALL: [(&'static str, Generator); 3] = [
        ("generate_uuid", Generator::Uuid),
        ("generate_mutation_token", Generator::MutationToken),
        ("now_ms", Generator::NowMs),
    ];
}

/// A piece of an interpolated string.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StrPiece {
    Text(String),
    Expr(Node),
}

/// Where a path starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PathRoot {
    /// A bare name: a named root of the scope's vars (or, for `root:`/`context:`, a body key).
    Var(String),
    /// `.x`, `@`, `[0]`...: the current value.
    Current,
    /// A leading `[]`: each element of the current array, or the current value itself
    /// when it is a single element (a mapping applied per element).
    Element,
    /// Any other expression followed by segments, e.g. `(a | b)[0]`.
    Node(Box<Node>),
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    Field(String),
    /// Array index; negative counts from the end.
    Index(i64),
    /// `[]` or `[*]`: the rest of the path applies to each element (or each value of an object).
    Project,
    /// `[?predicate]`: like `Project`, keeping only elements where the predicate is truthy.
    Select(Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl Node {
    /// Whether any path in this expression starts with the element marker `[]`.
    pub(crate) fn uses_element_marker(&self) -> bool {
        match self {
            Node::Literal(_) | Node::Generate(_) => false,
            Node::Interpolated(pieces) => pieces.iter().any(|piece| match piece {
                StrPiece::Text(_) => false,
                StrPiece::Expr(node) => node.uses_element_marker(),
            }),
            Node::Path { root, .. } => match root {
                PathRoot::Element => true,
                PathRoot::Node(node) => node.uses_element_marker(),
                PathRoot::Var(_) | PathRoot::Current => false,
            },
            Node::Not(inner) => inner.uses_element_marker(),
            Node::Binary { left, right, .. } => {
                left.uses_element_marker() || right.uses_element_marker()
            }
            Node::Ternary {
                condition,
                then,
                otherwise,
            } => {
                condition.uses_element_marker()
                    || then.uses_element_marker()
                    || otherwise.uses_element_marker()
            }
            Node::Pipe { input, .. } => input.uses_element_marker(),
            Node::Filter { input, args, .. } => {
                input.uses_element_marker() || args.iter().any(Node::uses_element_marker)
            }
        }
    }
}

/// A named root an expression reads, with the first field after it when
/// there is one: `params.text.length` → `params` and `text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootRef<'a> {
    pub name: &'a str,
    pub field: Option<&'a str>,
}

impl Node {
    /// Appends every named root this expression reads (bare names, including
    /// those inside embedded templates and filter arguments), in source order.
    pub(crate) fn collect_roots<'a>(&'a self, out: &mut Vec<RootRef<'a>>) {
        match self {
            Node::Literal(_) | Node::Generate(_) => {}
            Node::Interpolated(pieces) => collect_piece_roots(pieces, out),
            Node::Path { root, segments } => {
                match root {
                    PathRoot::Var(name) => out.push(RootRef {
                        name,
                        field: match segments.first() {
                            Some(Segment::Field(field)) => Some(field),
                            _ => None,
                        },
                    }),
                    PathRoot::Node(node) => node.collect_roots(out),
                    PathRoot::Current | PathRoot::Element => {}
                }
                for segment in segments {
                    if let Segment::Select(predicate) = segment {
                        predicate.collect_roots(out);
                    }
                }
            }
            Node::Not(inner) => inner.collect_roots(out),
            Node::Binary { left, right, .. } => {
                left.collect_roots(out);
                right.collect_roots(out);
            }
            Node::Ternary {
                condition,
                then,
                otherwise,
            } => {
                condition.collect_roots(out);
                then.collect_roots(out);
                otherwise.collect_roots(out);
            }
            Node::Pipe { input, stage } => {
                input.collect_roots(out);
                stage.collect_roots(out);
            }
            Node::Filter { input, args, .. } => {
                input.collect_roots(out);
                for arg in args {
                    arg.collect_roots(out);
                }
            }
        }
    }
}

/// [`Node::collect_roots`] over the parts of a template or interpolated string.
pub(crate) fn collect_piece_roots<'a>(pieces: &'a [StrPiece], out: &mut Vec<RootRef<'a>>) {
    for piece in pieces {
        if let StrPiece::Expr(node) = piece {
            node.collect_roots(out);
        }
    }
}
