//! The lexer of the mapping language: turns expression or template source
//! text into tokens. It is modal (code, single-quoted string, template text)
//! so that `{{ }}` can nest inside strings and strings inside `{{ }}`.

use serde_json::Number;

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    Ident(String),
    Number(Number),
    /// The opening `'` of a string literal.
    StrStart,
    /// Literal characters of a string, escapes already resolved.
    StrText(String),
    /// The closing `'` of a string literal.
    StrEnd,
    /// Literal text of a template, outside any `{{ }}`.
    Text(String),
    TemplateOpen,
    TemplateClose,
    Dot,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Question,
    Colon,
    Comma,
    Pipe,
    Star,
    At,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    Bang,
    AndAnd,
    OrOr,
    Eof,
}

impl TokenKind {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            TokenKind::Ident(name) => format!("`{name}`"),
            TokenKind::Number(number) => format!("number `{number}`"),
            TokenKind::StrStart => "a string".to_owned(),
            TokenKind::StrText(_) | TokenKind::Text(_) => "text".to_owned(),
            TokenKind::StrEnd => "the end of a string".to_owned(),
            TokenKind::TemplateOpen => "`{{`".to_owned(),
            TokenKind::TemplateClose => "`}}`".to_owned(),
            TokenKind::Dot => "`.`".to_owned(),
            TokenKind::LBracket => "`[`".to_owned(),
            TokenKind::RBracket => "`]`".to_owned(),
            TokenKind::LParen => "`(`".to_owned(),
            TokenKind::RParen => "`)`".to_owned(),
            TokenKind::Question => "`?`".to_owned(),
            TokenKind::Colon => "`:`".to_owned(),
            TokenKind::Comma => "`,`".to_owned(),
            TokenKind::Pipe => "`|`".to_owned(),
            TokenKind::Star => "`*`".to_owned(),
            TokenKind::At => "`@`".to_owned(),
            TokenKind::EqEq => "`==`".to_owned(),
            TokenKind::NotEq => "`!=`".to_owned(),
            TokenKind::Lt => "`<`".to_owned(),
            TokenKind::Le => "`<=`".to_owned(),
            TokenKind::Gt => "`>`".to_owned(),
            TokenKind::Ge => "`>=`".to_owned(),
            TokenKind::Bang => "`!`".to_owned(),
            TokenKind::AndAnd => "`&&`".to_owned(),
            TokenKind::OrOr => "`||`".to_owned(),
            TokenKind::Eof => "the end of the input".to_owned(),
        }
    }
}

/// A token and the 0-based character position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) pos: usize,
}

/// A lexing failure: message and 0-based character position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LexError {
    pub(crate) message: String,
    pub(crate) pos: usize,
}

/// Whether the source is an expression or a template (literal text with `{{ }}` parts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceKind {
    Expression,
    Template,
}

/// Where the lexer is: the mode stack keeps nesting of strings and `{{ }}`.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Expression code; `opened_at` is the position of the `{{` that began it, if any.
    Code { opened_at: Option<usize> },
    /// Inside a single-quoted string that started at `started_at`.
    Str { started_at: usize },
    /// Template literal text (only ever the bottom of the stack).
    Text,
}

/// Splits `src` into tokens, ending with `Eof`.
pub(crate) fn tokenize(src: &str, kind: SourceKind) -> Result<Vec<Token>, LexError> {
    Lexer {
        chars: src.chars().collect(),
        pos: 0,
        tokens: Vec::new(),
        modes: vec![match kind {
            SourceKind::Expression => Mode::Code { opened_at: None },
            SourceKind::Template => Mode::Text,
        }],
    }
    .run()
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    tokens: Vec<Token>,
    modes: Vec<Mode>,
}

impl Lexer {
    fn run(mut self) -> Result<Vec<Token>, LexError> {
        loop {
            let mode = *self.modes.last().expect("the mode stack is never empty");
            let more = match mode {
                Mode::Code { opened_at } => self.code(opened_at)?,
                Mode::Str { started_at } => self.string(started_at)?,
                Mode::Text => self.text()?,
            };
            if !more {
                break;
            }
        }
        self.push(TokenKind::Eof, self.chars.len());
        Ok(self.tokens)
    }

    fn peek(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn starts_with(&self, pair: &str) -> bool {
        pair.chars()
            .enumerate()
            .all(|(i, c)| self.peek(i) == Some(c))
    }

    fn push(&mut self, kind: TokenKind, pos: usize) {
        self.tokens.push(Token { kind, pos });
    }

    fn error(message: impl Into<String>, pos: usize) -> LexError {
        LexError {
            message: message.into(),
            pos,
        }
    }

    /// Lexes template literal text up to the next `{{` or the end. Returns false at the end.
    fn text(&mut self) -> Result<bool, LexError> {
        let start = self.pos;
        let mut buf = String::new();
        loop {
            match self.peek(0) {
                None => {
                    if !buf.is_empty() {
                        self.push(TokenKind::Text(buf), start);
                    }
                    return Ok(false);
                }
                Some(_) if self.starts_with("{{") => {
                    if !buf.is_empty() {
                        self.push(TokenKind::Text(buf), start);
                    }
                    self.open_template();
                    return Ok(true);
                }
                Some(_) if self.starts_with("}}") => {
                    return Err(Self::error(
                        "stray `}}` outside `{{ }}` (write `{{'}}'}}` for literal braces)",
                        self.pos,
                    ));
                }
                Some(c) => {
                    buf.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// An unterminated string; inside an unclosed `{{` the `}}` may be what is missing.
    fn unterminated(&self, started_at: usize) -> LexError {
        let enclosing = self.modes.iter().rev().find_map(|mode| match mode {
            Mode::Code { opened_at } => *opened_at,
            _ => None,
        });
        let message = match enclosing {
            Some(open) => format!(
                "unterminated string (missing closing `'`) inside the `{{{{` at column {}",
                open + 1
            ),
            None => "unterminated string (missing closing `'`)".to_owned(),
        };
        Self::error(message, started_at)
    }

    fn open_template(&mut self) {
        self.push(TokenKind::TemplateOpen, self.pos);
        self.modes.push(Mode::Code {
            opened_at: Some(self.pos),
        });
        self.pos += 2;
    }

    /// Lexes the inside of a string literal up to its end or an embedded `{{`.
    fn string(&mut self, started_at: usize) -> Result<bool, LexError> {
        let start = self.pos;
        let mut buf = String::new();
        loop {
            match self.peek(0) {
                None => return Err(self.unterminated(started_at)),
                Some('\'') => {
                    if !buf.is_empty() {
                        self.push(TokenKind::StrText(buf), start);
                    }
                    self.push(TokenKind::StrEnd, self.pos);
                    self.pos += 1;
                    self.modes.pop();
                    return Ok(true);
                }
                Some('\\') => {
                    let escaped = match self.peek(1) {
                        Some('\'') => '\'',
                        Some('\\') => '\\',
                        Some('{') => '{',
                        Some('}') => '}',
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some(other) => {
                            return Err(Self::error(
                                format!("unknown escape `\\{other}` in string (known: \\' \\\\ \\{{ \\}} \\n \\t)"),
                                self.pos,
                            ))
                        }
                        None => {
                            return Err(self.unterminated(started_at))
                        }
                    };
                    buf.push(escaped);
                    self.pos += 2;
                }
                Some(_) if self.starts_with("{{") => {
                    if !buf.is_empty() {
                        self.push(TokenKind::StrText(buf), start);
                    }
                    self.open_template();
                    return Ok(true);
                }
                Some(c) => {
                    buf.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// Lexes one code token (or the end). Returns false at the end of the input.
    fn code(&mut self, opened_at: Option<usize>) -> Result<bool, LexError> {
        while self.peek(0).is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
        let pos = self.pos;
        let Some(c) = self.peek(0) else {
            return match opened_at {
                Some(open) => Err(Self::error("unclosed `{{` (missing `}}`)", open)),
                None => Ok(false),
            };
        };
        if self.starts_with("}}") {
            if opened_at.is_none() {
                return Err(Self::error("stray `}}` with no matching `{{`", pos));
            }
            self.push(TokenKind::TemplateClose, pos);
            self.pos += 2;
            self.modes.pop();
            return Ok(true);
        }
        if self.starts_with("{{") {
            self.open_template();
            return Ok(true);
        }
        if c == '\'' {
            self.push(TokenKind::StrStart, pos);
            self.pos += 1;
            self.modes.push(Mode::Str { started_at: pos });
            return Ok(true);
        }
        if c.is_ascii_digit() || (c == '-' && self.peek(1).is_some_and(|d| d.is_ascii_digit())) {
            let number = self.number()?;
            self.push(TokenKind::Number(number), pos);
            return Ok(true);
        }
        if c.is_alphabetic() || c == '_' {
            let mut name = String::new();
            while let Some(c) = self.peek(0).filter(|c| c.is_alphanumeric() || *c == '_') {
                name.push(c);
                self.pos += 1;
            }
            self.push(TokenKind::Ident(name), pos);
            return Ok(true);
        }
        let (kind, width) = match (c, self.peek(1)) {
            ('=', Some('=')) => (TokenKind::EqEq, 2),
            ('!', Some('=')) => (TokenKind::NotEq, 2),
            ('<', Some('=')) => (TokenKind::Le, 2),
            ('>', Some('=')) => (TokenKind::Ge, 2),
            ('&', Some('&')) => (TokenKind::AndAnd, 2),
            ('|', Some('|')) => (TokenKind::OrOr, 2),
            ('.', _) => (TokenKind::Dot, 1),
            ('[', _) => (TokenKind::LBracket, 1),
            (']', _) => (TokenKind::RBracket, 1),
            ('(', _) => (TokenKind::LParen, 1),
            (')', _) => (TokenKind::RParen, 1),
            ('?', _) => (TokenKind::Question, 1),
            (':', _) => (TokenKind::Colon, 1),
            (',', _) => (TokenKind::Comma, 1),
            ('|', _) => (TokenKind::Pipe, 1),
            ('*', _) => (TokenKind::Star, 1),
            ('@', _) => (TokenKind::At, 1),
            ('<', _) => (TokenKind::Lt, 1),
            ('>', _) => (TokenKind::Gt, 1),
            ('!', _) => (TokenKind::Bang, 1),
            ('=', _) => return Err(Self::error("unexpected `=` (comparison is `==`)", pos)),
            ('&', _) => return Err(Self::error("unexpected `&` (logical and is `&&`)", pos)),
            ('}', _) => return Err(Self::error("unexpected `}` (`{{` is closed by `}}`)", pos)),
            ('{', _) => {
                return Err(Self::error(
                    "unexpected `{` (embedded expressions are written `{{ }}`)",
                    pos,
                ))
            }
            ('"', _) => {
                return Err(Self::error(
                    "unexpected `\"` (string literals use single quotes)",
                    pos,
                ))
            }
            (other, _) => return Err(Self::error(format!("unexpected character `{other}`"), pos)),
        };
        self.push(kind, pos);
        self.pos += width;
        Ok(true)
    }

    /// Lexes `-?digits(.digits)?([eE][+-]?digits)?` into an exact JSON number.
    fn number(&mut self) -> Result<Number, LexError> {
        let start = self.pos;
        let mut text = String::new();
        let mut is_float = false;
        if self.peek(0) == Some('-') {
            text.push('-');
            self.pos += 1;
        }
        self.digits(&mut text);
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|d| d.is_ascii_digit()) {
            is_float = true;
            text.push('.');
            self.pos += 1;
            self.digits(&mut text);
        }
        if matches!(self.peek(0), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek(1), Some('+' | '-')));
            if self.peek(1 + sign).is_some_and(|d| d.is_ascii_digit()) {
                is_float = true;
                for _ in 0..=sign {
                    text.push(self.chars[self.pos]);
                    self.pos += 1;
                }
                self.digits(&mut text);
            }
        }
        let number = if is_float {
            text.parse::<f64>().ok().and_then(Number::from_f64)
        } else if let Ok(unsigned) = text.parse::<u64>() {
            Some(Number::from(unsigned))
        } else {
            text.parse::<i64>().ok().map(Number::from)
        };
        number.ok_or_else(|| Self::error(format!("number `{text}` is out of range"), start))
    }

    fn digits(&mut self, text: &mut String) {
        while let Some(d) = self.peek(0).filter(char::is_ascii_digit) {
            text.push(d);
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str, kind: SourceKind) -> Vec<TokenKind> {
        tokenize(src, kind)
            .unwrap()
            .into_iter()
            .map(|token| token.kind)
            .collect()
    }

    #[test]
    fn string_with_embedded_template_nests_modes() {
        assert_eq!(
            kinds("'a{{ x ? '}}' : 'b' }}c'", SourceKind::Expression),
            vec![
                TokenKind::StrStart,
                TokenKind::StrText("a".into()),
                TokenKind::TemplateOpen,
                TokenKind::Ident("x".into()),
                TokenKind::Question,
                TokenKind::StrStart,
                TokenKind::StrText("}}".into()),
                TokenKind::StrEnd,
                TokenKind::Colon,
                TokenKind::StrStart,
                TokenKind::StrText("b".into()),
                TokenKind::StrEnd,
                TokenKind::TemplateClose,
                TokenKind::StrText("c".into()),
                TokenKind::StrEnd,
                TokenKind::Eof,
            ]
        );
    }

    #[test]
    fn numbers_keep_big_integers_exact() {
        assert_eq!(
            kinds("18446744073709551615 -5 1.5e3", SourceKind::Expression),
            vec![
                TokenKind::Number(Number::from(u64::MAX)),
                TokenKind::Number(Number::from(-5i64)),
                TokenKind::Number(Number::from_f64(1500.0).unwrap()),
                TokenKind::Eof,
            ]
        );
    }

    #[test]
    fn template_text_and_parts() {
        assert_eq!(
            kinds("{{api.base_url}}/inbox/", SourceKind::Template),
            vec![
                TokenKind::TemplateOpen,
                TokenKind::Ident("api".into()),
                TokenKind::Dot,
                TokenKind::Ident("base_url".into()),
                TokenKind::TemplateClose,
                TokenKind::Text("/inbox/".into()),
                TokenKind::Eof,
            ]
        );
    }

    #[test]
    fn errors_carry_positions() {
        let err = tokenize("a == 'open", SourceKind::Expression).unwrap_err();
        assert_eq!((err.pos, err.message.contains("unterminated")), (5, true));
        let err = tokenize("x }}", SourceKind::Expression).unwrap_err();
        assert_eq!(err.pos, 2);
        let err = tokenize("a {{ b", SourceKind::Template).unwrap_err();
        assert_eq!((err.pos, err.message.contains("unclosed")), (2, true));
        let err = tokenize("a }} b", SourceKind::Template).unwrap_err();
        assert!(err.message.contains("stray"));
    }
}
