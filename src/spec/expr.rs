//! The `${…}` expression language of block parameters (docs/spec-format.md, "Blocks").
//!
//! An expression is a parameter name (any value: integer, boolean, string, list, mapping), or
//! integer arithmetic on integer parameters and literals: `+ - * /  %`, unary `-` and
//! parentheses. `/` and `%` round toward −∞ (Python's `//` and `%`). Every operation is checked:
//! overflow of i128 and division by zero are errors, never a wrap or a panic.
//!
//! **Limits** (docs/robustness.md): an expression is at most [`MAX_EXPR_BYTES`] bytes and nests
//! parentheses and unary minus at most [`MAX_EXPR_DEPTH`] deep, so evaluation is linear in its
//! length and its recursion is bounded (100,000 nested `(` overflowed the stack before).

use super::node::{Node, Value};
use crate::error::did_you_mean;
use std::collections::HashMap;
use std::rc::Rc;

/// Parameter values in scope, by name (shared, so a repetition does not copy them).
pub type Vars = HashMap<String, Rc<Node>>;

/// Longest expression text between `${` and `}`, in bytes. A real one is a few dozen.
pub const MAX_EXPR_BYTES: usize = 1024;

/// Deepest nesting of parentheses and unary minus in one expression.
pub const MAX_EXPR_DEPTH: usize = 64;

/// The value of an expression: an integer computed here, or a parameter's value as given.
#[derive(Debug, Clone, PartialEq)]
pub enum Evaluated {
    /// The result of arithmetic (or an integer literal).
    Int(i128),
    /// A parameter named alone: its value, shared with the scope.
    Param(Rc<Node>),
}

impl Evaluated {
    /// The value as a spec [`Value`] (a parameter's value is copied).
    pub fn into_value(self) -> Value {
        match self {
            Evaluated::Int(v) => Value::Int(v),
            Evaluated::Param(n) => n.value.clone(),
        }
    }
}

/// Whether `s` is a parameter name: a letter or `_`, then letters, digits or `_`.
pub fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// Evaluate `expr` in `vars`.
///
/// Errors: an unknown parameter (with "did you mean"), a non-integer parameter in arithmetic,
/// a syntax error, overflow, division by zero, an expression longer than [`MAX_EXPR_BYTES`] or
/// nested deeper than [`MAX_EXPR_DEPTH`].
pub fn eval(expr: &str, vars: &Vars) -> Result<Evaluated, String> {
    let t = expr.trim();
    if t.len() > MAX_EXPR_BYTES {
        return Err(format!("expression of {} bytes, more than the limit of {MAX_EXPR_BYTES}", t.len()));
    }
    if is_ident(t) {
        return match vars.get(t) {
            Some(n) => Ok(Evaluated::Param(Rc::clone(n))),
            None => Err(unknown(t, vars)),
        };
    }
    let toks = tokens(t)?;
    let mut p = Parser { toks: &toks, i: 0, depth: 0, vars };
    let v = p.sum()?;
    if p.i != toks.len() {
        return Err(format!("unexpected `{}` in expression", toks[p.i]));
    }
    Ok(Evaluated::Int(v))
}

/// Names listed in an error: at most this many, sorted, then "and N more".
pub const MAX_LISTED_NAMES: usize = 20;

/// `names` sorted, at most [`MAX_LISTED_NAMES`] of them, joined by ", " ("none" if empty).
pub fn list_names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut v: Vec<&str> = names.into_iter().collect();
    if v.is_empty() {
        return "none".into();
    }
    v.sort_unstable();
    v.dedup();
    let more = v.len().saturating_sub(MAX_LISTED_NAMES);
    v.truncate(MAX_LISTED_NAMES);
    let mut s = v.join(", ");
    if more > 0 {
        s.push_str(&format!(" and {more} more"));
    }
    s
}

fn unknown(name: &str, vars: &Vars) -> String {
    let known = || vars.keys().map(String::as_str);
    format!("unknown parameter `{name}`{}; parameters here: {}", did_you_mean(name, known()), list_names(known()))
}

fn tokens(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if b"+-*/%()".contains(&c) {
            out.push(&s[i..i + 1]);
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == b'_' {
            let st = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(&s[st..i]);
        } else {
            let ch = s[i..].chars().next().unwrap_or('?');
            return Err(format!(
                "unexpected character {} in expression (expected integers, parameters, + - * / % and parentheses)",
                crate::error::quote_char(ch)
            ));
        }
    }
    if out.is_empty() {
        return Err("empty expression".into());
    }
    Ok(out)
}

struct Parser<'t> {
    toks: &'t [&'t str],
    i: usize,
    depth: usize,
    vars: &'t Vars,
}

const OVERFLOW: &str = "arithmetic overflow (results must fit a 128-bit integer)";

impl Parser<'_> {
    fn peek(&self) -> Option<&'static str> {
        // Operators are one ASCII byte: return the static spelling, so no borrow of `self` is held.
        let t = self.toks.get(self.i)?;
        ["+", "-", "*", "/", "%", "(", ")"].into_iter().find(|o| o == t)
    }
    fn deeper(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_EXPR_DEPTH {
            return Err(format!("expression nested more than {MAX_EXPR_DEPTH} deep (parentheses and unary minus)"));
        }
        Ok(())
    }
    fn sum(&mut self) -> Result<i128, String> {
        let mut v = self.product()?;
        while let Some(op @ ("+" | "-")) = self.peek() {
            self.i += 1;
            let r = self.product()?;
            v = if op == "+" { v.checked_add(r) } else { v.checked_sub(r) }.ok_or(OVERFLOW)?;
        }
        Ok(v)
    }
    fn product(&mut self) -> Result<i128, String> {
        let mut v = self.unary()?;
        while let Some(op @ ("*" | "/" | "%")) = self.peek() {
            self.i += 1;
            let r = self.unary()?;
            v = match op {
                "*" => v.checked_mul(r),
                _ if r == 0 => return Err("division by zero".into()),
                // i128::MIN / -1 overflows; checked_*_euclid says so instead of panicking.
                "/" => v.checked_div_euclid(r),
                _ => v.checked_rem_euclid(r),
            }
            .ok_or(OVERFLOW)?;
        }
        Ok(v)
    }
    fn unary(&mut self) -> Result<i128, String> {
        if self.peek() == Some("-") {
            self.i += 1;
            self.deeper()?;
            let v = self.unary()?.checked_neg().ok_or(OVERFLOW)?;
            self.depth -= 1;
            return Ok(v);
        }
        self.atom()
    }
    fn atom(&mut self) -> Result<i128, String> {
        let Some(&t) = self.toks.get(self.i) else { return Err("expression ends too early".into()) };
        self.i += 1;
        if t == "(" {
            self.deeper()?;
            let v = self.sum()?;
            if self.peek() != Some(")") {
                return Err("missing `)`".into());
            }
            self.i += 1;
            self.depth -= 1;
            return Ok(v);
        }
        if t.as_bytes()[0].is_ascii_digit() {
            return t.parse::<i128>().map_err(|_| {
                if t.bytes().all(|c| c.is_ascii_digit()) {
                    format!("`{t}` does not fit a 128-bit integer")
                } else {
                    format!("`{t}` is not an integer")
                }
            });
        }
        match self.vars.get(t) {
            Some(n) => match n.value {
                Value::Int(v) => Ok(v),
                ref other => {
                    Err(format!("parameter `{t}` is {}, expected an integer in arithmetic", other.type_name()))
                }
            },
            None if is_ident(t) => Err(unknown(t, self.vars)),
            None => Err(format!("unexpected `{t}` in expression")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::node::Loc;

    fn vars() -> Vars {
        HashMap::from([("w".to_owned(), Rc::new(Node::synthetic(Loc::default(), Value::Int(64))))])
    }

    #[test]
    fn arithmetic() {
        let v = vars();
        assert_eq!(eval("w * 4", &v), Ok(Evaluated::Int(256)));
        // (64 + 2) / 4 = 16 (rounded down), 16 - (-1) = 17.
        assert_eq!(eval("(w + 2) / 4 - -1", &v), Ok(Evaluated::Int(17)));
        assert_eq!(eval("w % 10", &v), Ok(Evaluated::Int(4)));
        // Floor division and a non-negative remainder: -7 // 2 = -4, -7 % 2 = 1 (Python).
        assert_eq!(eval("-7 / 2", &v), Ok(Evaluated::Int(-4)));
        assert_eq!(eval("-7 % 2", &v), Ok(Evaluated::Int(1)));
        assert!(eval("w / 0", &v).unwrap_err().contains("division by zero"));
        assert!(eval("x + 1", &v).unwrap_err().contains("unknown parameter `x`"));
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        let v = vars();
        // i128::MIN = -170141183460469231731687303715884105728; MIN / -1 and MIN % -1 overflow.
        let min = "(-170141183460469231731687303715884105727 - 1)";
        assert!(eval(&format!("{min} / -1"), &v).unwrap_err().contains("overflow"));
        assert!(eval(&format!("{min} % -1"), &v).unwrap_err().contains("overflow"));
        assert!(eval(&format!("-{min}"), &v).unwrap_err().contains("overflow"));
        assert!(eval("170141183460469231731687303715884105727 + 1", &v).unwrap_err().contains("overflow"));
        assert!(eval("1701411834604692317316873037158841057270", &v).unwrap_err().contains("128-bit"));
    }

    #[test]
    fn depth_and_length_are_bounded() {
        let v = vars();
        // 64 levels are fine, 65 are not; 100,000 (the hostile case) is refused by length first.
        let ok = format!("{}1{}", "(".repeat(MAX_EXPR_DEPTH), ")".repeat(MAX_EXPR_DEPTH));
        assert_eq!(eval(&ok, &v), Ok(Evaluated::Int(1)));
        let deep = format!("{}1{}", "(".repeat(MAX_EXPR_DEPTH + 1), ")".repeat(MAX_EXPR_DEPTH + 1));
        assert!(eval(&deep, &v).unwrap_err().contains("nested more than 64"));
        let minus = format!("{}1", "-".repeat(MAX_EXPR_DEPTH + 1));
        assert!(eval(&minus, &v).unwrap_err().contains("nested more than 64"));
        let long = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(eval(&long, &v).unwrap_err().contains("more than the limit of 1024"));
        assert!(eval(&"-".repeat(1_000_000), &v).unwrap_err().contains("more than the limit"));
    }

    #[test]
    fn odd_characters_are_quoted_visibly() {
        let e = eval("1 \u{1b}[2J + 1", &vars()).unwrap_err();
        assert!(e.contains("`\\u{1b}`"), "{e}");
    }

    #[test]
    fn lists_are_sorted_and_capped() {
        let names: Vec<String> = (0..25).map(|i| format!("b{i:02}")).collect();
        let s = list_names(names.iter().rev().map(String::as_str));
        assert!(s.starts_with("b00, b01, "), "{s}");
        assert!(s.ends_with("b19 and 5 more"), "{s}");
        assert_eq!(list_names([]), "none");
    }
}
