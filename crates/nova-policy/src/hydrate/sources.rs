//! Where variable values come from: the process environment, env files, or any other
//! [`ValueSource`] (a secret store, later).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use super::grammar::is_name;

/// A variable's value. Its `Debug` output is redacted and it has no `Display`, so that it
/// cannot reach a log line or message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretValue(value.into())
    }

    /// The value itself, for writing into the rendered output only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(**REDACTED**)")
    }
}

/// A value and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The value.
    pub value: SecretValue,
    /// Where the value comes from, for `--dry-run` (`environment`, `env file prod.env:3`).
    pub origin: String,
}

/// A source could not answer. The message names the source and never holds a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Somewhere variable values can be looked up.
pub trait ValueSource {
    /// The value of `name`: `Ok(None)` when this source does not have it.
    fn lookup(&self, name: &str) -> Result<Option<Found>, SourceError>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Environment;

impl ValueSource for Environment {
    fn lookup(&self, name: &str) -> Result<Option<Found>, SourceError> {
        match std::env::var_os(name) {
            None => Ok(None),
            Some(value) => match value.into_string() {
                Ok(value) => Ok(Some(Found {
                    value: SecretValue(value),
                    origin: "environment".to_owned(),
                })),
                Err(_) => Err(SourceError(
                    "its value in the environment is not UTF-8".to_owned(),
                )),
            },
        }
    }
}

/// Values given in memory, e.g. by a caller that already holds them.
#[derive(Debug, Clone, Default)]
pub struct StaticValues {
    origin: String,
    values: BTreeMap<String, SecretValue>,
}

impl StaticValues {
    /// Values described as `origin` in `--dry-run` listings.
    pub fn new(
        origin: impl Into<String>,
        values: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let values = values
            .into_iter()
            .map(|(k, v)| (k, SecretValue(v)))
            .collect();
        StaticValues {
            origin: origin.into(),
            values,
        }
    }
}

impl ValueSource for StaticValues {
    fn lookup(&self, name: &str) -> Result<Option<Found>, SourceError> {
        Ok(self.values.get(name).map(|value| Found {
            value: value.clone(),
            origin: self.origin.clone(),
        }))
    }
}

/// An env file could not be read. The message names the file and line, never a value.
#[derive(Debug, thiserror::Error)]
#[error("env file {file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct EnvFileError {
    file: String,
    line: Option<usize>,
    message: String,
}

/// A file of `NAME=value` lines.
///
/// Blank lines and lines starting with `#` are skipped; `export ` before a name is allowed.
/// A value is taken as written up to the end of the line or a ` #` comment, trimmed; in
/// single quotes it is literal, in double quotes `\n`, `\t`, `\"`, `\\` and `\$` are escapes.
/// Values are never expanded. A name given twice takes its last value.
#[derive(Debug, Clone)]
pub struct EnvFile {
    name: String,
    values: HashMap<String, (SecretValue, usize)>,
}

impl EnvFile {
    /// Reads the env file at `path`.
    pub fn load(path: &Path) -> Result<EnvFile, EnvFileError> {
        let name = path.display().to_string();
        let fail = |message: String| EnvFileError {
            file: name.clone(),
            line: None,
            message,
        };
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        if bytes.contains(&0) {
            return Err(fail("binary content (NUL byte)".to_owned()));
        }
        let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".to_owned()))?;
        EnvFile::parse(&text, &name)
    }

    /// Reads env file text; `name` is how messages and `--dry-run` refer to it.
    pub fn parse(text: &str, name: &str) -> Result<EnvFile, EnvFileError> {
        let mut values = HashMap::new();
        for (number, line) in (1..).zip(text.lines()) {
            let fail = |message: &str| EnvFileError {
                file: name.to_owned(),
                line: Some(number),
                message: message.to_owned(),
            };
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").map_or(line, str::trim_start);
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| fail("expected NAME=value"))?;
            let key = key.trim_end();
            if !is_name(key) {
                return Err(fail(
                    "invalid variable name: names are [A-Za-z_][A-Za-z0-9_]*",
                ));
            }
            let value = parse_value(value.trim_start()).map_err(fail)?;
            values.insert(key.to_owned(), (SecretValue(value), number));
        }
        Ok(EnvFile {
            name: name.to_owned(),
            values,
        })
    }
}

impl ValueSource for EnvFile {
    fn lookup(&self, name: &str) -> Result<Option<Found>, SourceError> {
        Ok(self.values.get(name).map(|(value, line)| Found {
            value: value.clone(),
            origin: format!("env file {}:{line}", self.name),
        }))
    }
}

fn parse_value(raw: &str) -> Result<String, &'static str> {
    let (value, rest) = if let Some(quoted) = raw.strip_prefix('\'') {
        let end = quoted.find('\'').ok_or("unterminated single quote")?;
        (quoted[..end].to_owned(), &quoted[end + 1..])
    } else if let Some(quoted) = raw.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        loop {
            match chars.next().ok_or("unterminated double quote")? {
                (end, '"') => break (value, &quoted[end + 1..]),
                (_, '\\') => match chars.next().ok_or("unterminated double quote")?.1 {
                    'n' => value.push('\n'),
                    't' => value.push('\t'),
                    c @ ('"' | '\\' | '$') => value.push(c),
                    _ => {
                        return Err(
                            "unknown escape in double quotes (known: \\n \\t \\\" \\\\ \\$)",
                        );
                    }
                },
                (_, c) => value.push(c),
            }
        }
    } else {
        let end = raw
            .find(" #")
            .or_else(|| raw.find("\t#"))
            .unwrap_or(raw.len());
        return Ok(raw[..end].trim_end().to_owned());
    };
    let rest = rest.trim_start();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(value)
    } else {
        Err("text after the closing quote")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(file: &EnvFile, name: &str) -> Option<String> {
        file.lookup(name)
            .unwrap()
            .map(|found| found.value.expose().to_owned())
    }

    #[test]
    fn env_files_take_plain_quoted_and_exported_values() {
        let file = EnvFile::parse(
            "# comment\n\nA=plain value  # note\nexport B = 'single # kept $X'\nC=\"two\\nlines \\\"q\\\"\"\nD=\nE=a#b\nA=last\n",
            "app.env",
        )
        .unwrap();
        assert_eq!(value(&file, "A").as_deref(), Some("last"));
        assert_eq!(value(&file, "B").as_deref(), Some("single # kept $X"));
        assert_eq!(value(&file, "C").as_deref(), Some("two\nlines \"q\""));
        assert_eq!(value(&file, "D").as_deref(), Some(""));
        assert_eq!(value(&file, "E").as_deref(), Some("a#b"));
        assert_eq!(value(&file, "F"), None);
        assert_eq!(
            file.lookup("A").unwrap().unwrap().origin,
            "env file app.env:8"
        );
    }

    #[test]
    fn env_file_errors_name_file_and_line_but_no_value() {
        let error = |text| EnvFile::parse(text, "app.env").unwrap_err().to_string();
        assert_eq!(
            error("A=1\nno equals sign secret\n"),
            "env file app.env:2: expected NAME=value"
        );
        assert_eq!(
            error("1A=secret\n"),
            "env file app.env:1: invalid variable name: names are [A-Za-z_][A-Za-z0-9_]*"
        );
        assert_eq!(
            error("A='secret\n"),
            "env file app.env:1: unterminated single quote"
        );
        assert_eq!(
            error("A=\"secret\" trailing\n"),
            "env file app.env:1: text after the closing quote"
        );
        assert!(!error("A=\"se\\qcret\"").contains("secret"));
    }

    #[test]
    fn values_do_not_show_in_debug_output() {
        let found = StaticValues::new("test", [("A".to_owned(), "hunter2".to_owned())])
            .lookup("A")
            .unwrap();
        assert!(!format!("{found:?}").contains("hunter2"));
    }
}
