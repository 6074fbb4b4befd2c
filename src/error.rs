//! Errors a user can act on: every spec error names the file, line and column, and the layer.
//!
//! Format (uv renders parser errors as `path:line:column: message`, tract names nodes as
//! `#4 "fc" (linear)`):
//! `specs/x.yaml:12:5: layer #4 "fc" (linear): expected 9216 input features, got 6400`.

use crate::spec::node::Loc;
use std::fmt;

/// The layer an error is about: its position in the spec (0-based), name and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// 0-based index of the layer in the expanded spec.
    pub index: usize,
    /// The layer's `name` (hierarchical after block expansion, e.g. `layer2.0.conv1`).
    pub name: String,
    /// The layer's `kind`, or `?` when the kind itself is what is wrong.
    pub kind: String,
}

/// A problem with a spec file: where it is and what is wrong.
///
/// Displayed as `FILE:LINE:COL: layer #I "NAME" (KIND): MESSAGE`; the layer part is left out
/// when the error is not about one layer (bad YAML, a top-level field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The spec's path as the user gave it.
    pub file: String,
    /// Line and column of the offending node (1-based; 0:0 when the parser gave none).
    pub loc: Loc,
    /// The layer concerned, if any.
    pub layer: Option<LayerRef>,
    /// What is wrong, "expected … got …" where there is an expectation.
    pub message: String,
}

impl SpecError {
    /// An error at `loc` of `file`, not (yet) tied to a layer.
    pub fn new(file: &str, loc: Loc, message: impl Into<String>) -> Self {
        SpecError { file: file.to_owned(), loc, layer: None, message: message.into() }
    }

    /// Attach the layer this error is about (keeps an existing one).
    pub fn in_layer(mut self, layer: &LayerRef) -> Self {
        if self.layer.is_none() {
            self.layer = Some(layer.clone());
        }
        self
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.loc.line, self.loc.col)?;
        if let Some(l) = &self.layer {
            write!(f, "layer #{} \"{}\" ({}): ", l.index, l.name, l.kind)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for SpecError {}

/// Everything netstat's library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec (or a command-line override of it) is wrong: exit code 2.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path concerned.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A command-line value is wrong (e.g. `--input 3x0x5`): exit code 2.
    #[error("{0}")]
    Usage(String),
    /// `netstat measure` failed while building or running the model in candle: exit code 1.
    #[error("{0}")]
    Measure(String),
    /// `netstat report --check` found committed reports out of date: exit code 1.
    #[error("{0}")]
    Stale(String),
}

impl Error {
    /// The process exit code for this error: 2 for bad input, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Spec(_) | Error::Usage(_) => 2,
            Error::Io { .. } | Error::Stale(_) => 1,
            Error::Measure(_) => 1,
        }
    }
}

/// `s` with every control character (newline, tab, ESC, NUL, DEL, C1 controls) written as an
/// escape (`\n`, `\t`, `\u{1b}`), so a message built from user text stays one line and cannot
/// move the cursor, clear the screen or set a terminal's title.
pub fn escape_control(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// One character in backquotes, escaped if it is a control character: `` `x` ``, `` `\u{1b}` ``.
pub fn quote_char(c: char) -> String {
    let mut b = [0u8; 4];
    format!("`{}`", escape_control(c.encode_utf8(&mut b)))
}

/// Longest name "did you mean" compares, in bytes.
pub const MAX_SUGGEST_BYTES: usize = 64;

/// Longest error line printed, in bytes; past it the line is cut and says how much was left out.
pub const MAX_ERROR_LINE_BYTES: usize = 2048;

/// `message` as one printable line: control characters escaped ([`escape_control`]) and cut at
/// [`MAX_ERROR_LINE_BYTES`] (on a character boundary) with "… (N more bytes)".
pub fn one_line(message: &str) -> String {
    let s = escape_control(message);
    if s.len() <= MAX_ERROR_LINE_BYTES {
        return s.into_owned();
    }
    let mut cut = MAX_ERROR_LINE_BYTES;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} more bytes)", &s[..cut], s.len() - cut)
}

/// "did you mean `x`?" for the known name closest to `got`, if one is close enough.
///
/// Closeness is Jaro-Winkler similarity ≥ 0.8 (strsim), the threshold cargo and clap use.
/// Names longer than [`MAX_SUGGEST_BYTES`] get no suggestion and are never suggested: comparing
/// 700 names of 20,000 characters took over a minute, and a typo in such a name is no typo.
pub fn did_you_mean<'a>(got: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    if got.len() > MAX_SUGGEST_BYTES {
        return String::new();
    }
    let best = known
        .into_iter()
        .filter(|k| k.len() <= MAX_SUGGEST_BYTES)
        .map(|k| (strsim::jaro_winkler(got, k), k))
        .filter(|(s, _)| *s >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, k)) => format!(" (did you mean `{k}`?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_col_and_layer() {
        let e = SpecError::new("specs/x.yaml", Loc { line: 12, col: 5 }, "expected 9216 input features, got 6400")
            .in_layer(&LayerRef { index: 4, name: "fc".into(), kind: "linear".into() });
        assert_eq!(
            e.to_string(),
            "specs/x.yaml:12:5: layer #4 \"fc\" (linear): expected 9216 input features, got 6400"
        );
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("conv2", ["conv2d", "linear"]), " (did you mean `conv2d`?)");
        assert_eq!(did_you_mean("zzz", ["conv2d", "linear"]), "");
    }
}
