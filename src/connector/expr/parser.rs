//! The parser: a recursive-descent parser from tokens to the syntax tree.
//! Precedence, lowest first: `|`, `? :`, `||`, `&&`, `== !=`, `< <= > >=`,
//! `!`, path segments (`.x`, `[0]`, `[]`, `[*]`, `[?p]`).

use serde_json::Value;

use super::ast::{BinaryOp, Generator, Node, PathRoot, Segment, StrPiece};
use super::filters::Filter;
use super::lexer::{Token, TokenKind};

/// How deeply expressions may nest; deeper input is refused rather than overflowing the stack.
const MAX_DEPTH: usize = 64;

/// A parse failure at a 0-based character position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    pub(crate) message: String,
    pub(crate) pos: usize,
}

type ParseResult<T> = Result<T, SyntaxError>;

/// Parses a whole expression.
pub(crate) fn parse_expression(tokens: &[Token]) -> ParseResult<Node> {
    let mut parser = Parser::new(tokens);
    let node = parser.pipeline()?;
    parser.expect_end()?;
    Ok(node)
}

/// Parses a template's tokens into literal text and expression parts.
pub(crate) fn parse_template(tokens: &[Token]) -> ParseResult<Vec<StrPiece>> {
    let mut parser = Parser::new(tokens);
    let mut parts = Vec::new();
    loop {
        match parser.peek() {
            TokenKind::Text(text) => {
                parts.push(StrPiece::Text(text.clone()));
                parser.advance();
            }
            TokenKind::TemplateOpen => parts.push(StrPiece::Expr(parser.embedded()?)),
            TokenKind::Eof => return Ok(parts),
            other => return Err(parser.error_here(format!("unexpected {}", other.describe()))),
        }
    }
}

struct Parser<'t> {
    tokens: &'t [Token],
    index: usize,
    depth: usize,
    /// Inside `[? ]` bare names refer to the element being tested, not to vars.
    in_predicate: bool,
}

impl<'t> Parser<'t> {
    fn new(tokens: &'t [Token]) -> Self {
        Parser {
            tokens,
            index: 0,
            depth: 0,
            in_predicate: false,
        }
    }

    fn token(&self) -> &Token {
        // The lexer always ends the stream with `Eof`, and the parser never advances past it.
        &self.tokens[self.index.min(self.tokens.len() - 1)]
    }

    fn peek(&self) -> &TokenKind {
        &self.token().kind
    }

    fn peek_at(&self, offset: usize) -> &TokenKind {
        &self.tokens[(self.index + offset).min(self.tokens.len() - 1)].kind
    }

    fn advance(&mut self) {
        if self.index < self.tokens.len() - 1 {
            self.index += 1;
        }
    }

    fn eat(&mut self, kind: &TokenKind) -> bool {
        if self.peek() == kind {
            self.advance();
            true
        } else {
            false
        }
    }

    fn error_here(&self, message: String) -> SyntaxError {
        SyntaxError {
            message,
            pos: self.token().pos,
        }
    }

    fn expect(&mut self, kind: &TokenKind, what: &str) -> ParseResult<()> {
        if self.eat(kind) {
            Ok(())
        } else {
            Err(self.error_here(format!("{what}, found {}", self.peek().describe())))
        }
    }

    fn expect_end(&self) -> ParseResult<()> {
        match self.peek() {
            TokenKind::Eof => Ok(()),
            other => Err(self.error_here(format!(
                "unexpected {} after a complete expression",
                other.describe()
            ))),
        }
    }

    fn enter(&mut self) -> ParseResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_here(format!(
                "expression nested more than {MAX_DEPTH} levels deep"
            )));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// `ternary ('|' stage)*`
    fn pipeline(&mut self) -> ParseResult<Node> {
        self.enter()?;
        let mut node = self.ternary()?;
        let mut stages = 0;
        while self.eat(&TokenKind::Pipe) {
            // Each stage nests the tree one level deeper, so it counts towards the depth limit.
            self.enter()?;
            stages += 1;
            node = self.pipe_stage(node)?;
        }
        self.depth -= stages;
        self.leave();
        Ok(node)
    }

    /// What follows a `|`: a filter with optional `: args`, or a path applied to the piped value.
    fn pipe_stage(&mut self, input: Node) -> ParseResult<Node> {
        let pos = self.token().pos;
        match self.peek().clone() {
            TokenKind::Ident(name) => {
                self.advance();
                let Some(filter) = Filter::lookup(&name) else {
                    return Err(SyntaxError {
                        message: format!("unknown filter `{name}` (known: {})", Filter::names()),
                        pos,
                    });
                };
                let mut args = Vec::new();
                if self.eat(&TokenKind::Colon) {
                    loop {
                        args.push(self.ternary()?);
                        if !self.eat(&TokenKind::Comma) {
                            break;
                        }
                    }
                }
                let (min, max) = filter.arity();
                if args.len() < min || args.len() > max {
                    let expected = if min == max {
                        format!("{min}")
                    } else {
                        format!("{min} to {max}")
                    };
                    return Err(SyntaxError {
                        message: format!(
                            "filter `{name}` takes {expected} argument(s), got {}",
                            args.len()
                        ),
                        pos,
                    });
                }
                Ok(Node::Filter {
                    input: Box::new(input),
                    filter,
                    args,
                })
            }
            TokenKind::Dot | TokenKind::LBracket => {
                let segments = self.segments()?;
                Ok(Node::Pipe {
                    input: Box::new(input),
                    stage: Box::new(Node::Path {
                        root: PathRoot::Current,
                        segments,
                    }),
                })
            }
            other => Err(self.error_here(format!(
                "expected a filter name or a path like `[0]` after `|`, found {}",
                other.describe()
            ))),
        }
    }

    /// `or ('?' ternary ':' ternary)?`
    fn ternary(&mut self) -> ParseResult<Node> {
        let condition = self.or()?;
        let question = self.token().pos;
        if !self.eat(&TokenKind::Question) {
            return Ok(condition);
        }
        self.enter()?;
        let then = self.ternary()?;
        self.expect(
            &TokenKind::Colon,
            &format!(
                "expected `:` to complete the conditional `?` at column {}",
                question + 1
            ),
        )?;
        let otherwise = self.ternary()?;
        self.leave();
        Ok(Node::Ternary {
            condition: Box::new(condition),
            then: Box::new(then),
            otherwise: Box::new(otherwise),
        })
    }

    fn or(&mut self) -> ParseResult<Node> {
        self.binary_level(
            |token| (token == &TokenKind::OrOr).then_some(BinaryOp::Or),
            Self::and,
        )
    }

    fn and(&mut self) -> ParseResult<Node> {
        self.binary_level(
            |token| (token == &TokenKind::AndAnd).then_some(BinaryOp::And),
            Self::equality,
        )
    }

    fn equality(&mut self) -> ParseResult<Node> {
        self.binary_level(
            |token| match token {
                TokenKind::EqEq => Some(BinaryOp::Eq),
                TokenKind::NotEq => Some(BinaryOp::Ne),
                _ => None,
            },
            Self::comparison,
        )
    }

    fn comparison(&mut self) -> ParseResult<Node> {
        self.binary_level(
            |token| match token {
                TokenKind::Lt => Some(BinaryOp::Lt),
                TokenKind::Le => Some(BinaryOp::Le),
                TokenKind::Gt => Some(BinaryOp::Gt),
                TokenKind::Ge => Some(BinaryOp::Ge),
                _ => None,
            },
            Self::unary,
        )
    }

    /// One precedence level of left-associative operators: `operand (op operand)*`.
    fn binary_level(
        &mut self,
        operator: fn(&TokenKind) -> Option<BinaryOp>,
        operand: fn(&mut Self) -> ParseResult<Node>,
    ) -> ParseResult<Node> {
        let mut left = operand(self)?;
        let mut links = 0;
        while let Some(op) = operator(self.peek()) {
            // Each link nests the tree one level deeper, so it counts towards the depth limit.
            self.enter()?;
            links += 1;
            self.advance();
            let right = operand(self)?;
            left = binary(op, left, right);
        }
        self.depth -= links;
        Ok(left)
    }

    fn unary(&mut self) -> ParseResult<Node> {
        if self.eat(&TokenKind::Bang) {
            self.enter()?;
            let inner = self.unary()?;
            self.leave();
            return Ok(Node::Not(Box::new(inner)));
        }
        self.postfix()
    }

    /// A primary value followed by any path segments.
    fn postfix(&mut self) -> ParseResult<Node> {
        let primary = self.primary()?;
        let more = self.segments()?;
        Ok(match primary {
            Node::Path { root, mut segments } => {
                segments.extend(more);
                Node::Path { root, segments }
            }
            other if more.is_empty() => other,
            other => Node::Path {
                root: PathRoot::Node(Box::new(other)),
                segments: more,
            },
        })
    }

    fn primary(&mut self) -> ParseResult<Node> {
        let pos = self.token().pos;
        match self.peek().clone() {
            TokenKind::Ident(name) => {
                self.advance();
                self.named(name, pos)
            }
            TokenKind::Number(number) => {
                self.advance();
                Ok(Node::Literal(Value::Number(number)))
            }
            TokenKind::StrStart => self.string(),
            TokenKind::LParen => {
                self.advance();
                let inner = self.pipeline()?;
                self.expect(
                    &TokenKind::RParen,
                    &format!("expected `)` to close the `(` at column {}", pos + 1),
                )?;
                Ok(inner)
            }
            TokenKind::TemplateOpen => self.embedded(),
            TokenKind::At => {
                self.advance();
                Ok(current_path(Vec::new()))
            }
            TokenKind::Dot => Ok(current_path(Vec::new())),
            TokenKind::LBracket => {
                if self.peek_at(1) == &TokenKind::RBracket {
                    self.advance();
                    self.advance();
                    Ok(Node::Path {
                        root: PathRoot::Element,
                        segments: Vec::new(),
                    })
                } else {
                    Ok(current_path(Vec::new()))
                }
            }
            other => Err(self.error_here(format!("expected a value, found {}", other.describe()))),
        }
    }

    /// A bare name: a keyword, a generator (`generate_uuid`, ...), or the start of a path.
    fn named(&mut self, name: String, pos: usize) -> ParseResult<Node> {
        match name.as_str() {
            "true" => return Ok(Node::Literal(Value::Bool(true))),
            "false" => return Ok(Node::Literal(Value::Bool(false))),
            "null" => return Ok(Node::Literal(Value::Null)),
            _ => {}
        }
        let is_call = self.peek() == &TokenKind::LParen;
        if let Some((_, generator)) = Generator::ALL
            .iter()
            .find(|(reserved, _)| *reserved == name)
        {
            if is_call {
                self.advance();
                self.expect(
                    &TokenKind::RParen,
                    &format!("`{name}` takes no arguments: expected `)`"),
                )?;
            }
            return Ok(Node::Generate(*generator));
        }
        if is_call {
            let known: Vec<&str> = Generator::ALL
                .iter()
                .map(|(reserved, _)| *reserved)
                .collect();
            return Err(SyntaxError {
                message: format!("unknown function `{name}` (known: {})", known.join(", ")),
                pos,
            });
        }
        Ok(if self.in_predicate {
            current_path(vec![Segment::Field(name)])
        } else {
            Node::Path {
                root: PathRoot::Var(name),
                segments: Vec::new(),
            }
        })
    }

    /// `{{ pipeline }}` inside an expression, a string or a template: evaluated like a
    /// parenthesised expression, with bare names referring to vars again.
    fn embedded(&mut self) -> ParseResult<Node> {
        let open = self.token().pos;
        self.expect(&TokenKind::TemplateOpen, "expected `{{`")?;
        let saved = std::mem::replace(&mut self.in_predicate, false);
        let inner = self.pipeline()?;
        self.in_predicate = saved;
        self.expect(
            &TokenKind::TemplateClose,
            &format!("expected `}}}}` to close the `{{{{` at column {}", open + 1),
        )?;
        Ok(inner)
    }

    /// A single-quoted string, possibly with `{{ }}` parts.
    fn string(&mut self) -> ParseResult<Node> {
        self.expect(&TokenKind::StrStart, "expected a string")?;
        let mut pieces: Vec<StrPiece> = Vec::new();
        loop {
            match self.peek().clone() {
                TokenKind::StrText(text) => {
                    self.advance();
                    pieces.push(StrPiece::Text(text));
                }
                TokenKind::TemplateOpen => pieces.push(StrPiece::Expr(self.embedded()?)),
                TokenKind::StrEnd => {
                    self.advance();
                    break;
                }
                other => {
                    return Err(
                        self.error_here(format!("unexpected {} inside a string", other.describe()))
                    )
                }
            }
        }
        if pieces
            .iter()
            .all(|piece| matches!(piece, StrPiece::Text(_)))
        {
            let text: String = pieces
                .into_iter()
                .map(|piece| match piece {
                    StrPiece::Text(text) => text,
                    StrPiece::Expr(_) => String::new(),
                })
                .collect();
            return Ok(Node::Literal(Value::String(text)));
        }
        Ok(Node::Interpolated(pieces))
    }

    /// A field name given as a plain string (`['x-key']`, `.'x-key'`).
    fn quoted_key(&mut self) -> ParseResult<String> {
        let pos = self.token().pos;
        match self.string()? {
            Node::Literal(Value::String(key)) => Ok(key),
            _ => Err(SyntaxError {
                message: "a quoted field name cannot contain `{{ }}`".into(),
                pos,
            }),
        }
    }

    /// Zero or more `.name`, `[index]`, `[]`, `[*]`, `[?predicate]`, `['key']`.
    fn segments(&mut self) -> ParseResult<Vec<Segment>> {
        let mut segments = Vec::new();
        let mut projections = 0;
        loop {
            match self.peek() {
                TokenKind::Dot => {
                    self.advance();
                    match self.peek().clone() {
                        TokenKind::Ident(name) => {
                            self.advance();
                            segments.push(Segment::Field(name));
                        }
                        TokenKind::StrStart => segments.push(Segment::Field(self.quoted_key()?)),
                        other => {
                            return Err(self.error_here(format!(
                                "expected a field name after `.`, found {}",
                                other.describe()
                            )))
                        }
                    }
                }
                TokenKind::LBracket => {
                    let open = self.token().pos;
                    self.advance();
                    let segment = self.bracket(open)?;
                    if matches!(segment, Segment::Project | Segment::Select(_)) {
                        // The evaluator recurses once per projection.
                        self.enter()?;
                        projections += 1;
                    }
                    segments.push(segment);
                }
                _ => {
                    self.depth -= projections;
                    return Ok(segments);
                }
            }
        }
    }

    /// The inside of `[ ]`, after the `[`.
    fn bracket(&mut self, open: usize) -> ParseResult<Segment> {
        let close = format!("expected `]` to close the `[` at column {}", open + 1);
        let segment = match self.peek().clone() {
            TokenKind::RBracket => Segment::Project,
            TokenKind::Star => {
                self.advance();
                Segment::Project
            }
            TokenKind::Question => {
                self.advance();
                self.enter()?;
                let saved = std::mem::replace(&mut self.in_predicate, true);
                let predicate = self.pipeline()?;
                self.in_predicate = saved;
                self.leave();
                Segment::Select(Box::new(predicate))
            }
            TokenKind::Number(number) => {
                let Some(index) = number.as_i64() else {
                    return Err(
                        self.error_here(format!("array index must be an integer, found {number}"))
                    );
                };
                self.advance();
                Segment::Index(index)
            }
            TokenKind::StrStart => Segment::Field(self.quoted_key()?),
            other => {
                return Err(self.error_here(format!(
                    "expected an index, `*`, `?filter`, a quoted key or `]` after `[`, found {}",
                    other.describe()
                )))
            }
        };
        self.expect(&TokenKind::RBracket, &close)?;
        Ok(segment)
    }
}

fn binary(op: BinaryOp, left: Node, right: Node) -> Node {
    Node::Binary {
        op,
        left: Box::new(left),
        right: Box::new(right),
    }
}

fn current_path(segments: Vec<Segment>) -> Node {
    Node::Path {
        root: PathRoot::Current,
        segments,
    }
}
