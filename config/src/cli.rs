//! One way to read a command line, for mfad, mfa-enroll and mfa-approve.
//!
//! Ours rather than clap's: every word a user reads must come from the
//! catalogs (`config/lang`), in the user's language, and clap says its own
//! errors and lays out its help in English only. What the programs need
//! is small: long options, each taking nothing, a value (`--opt V` or
//! `--opt=V`) or an optional value (`--status [USER]`), and `-h`.

use std::path::PathBuf;

use crate::i18n::Texts;

/// What an option takes after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    Nothing,
    Value,
    /// The next word, unless it is another option (`--status [USER]`).
    OptionalValue,
}

/// A long option: `--name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt {
    pub name: &'static str,
    pub takes: Takes,
}

impl Opt {
    pub const fn flag(name: &'static str) -> Opt {
        Opt { name, takes: Takes::Nothing }
    }

    pub const fn value(name: &'static str) -> Opt {
        Opt { name, takes: Takes::Value }
    }

    pub const fn optional(name: &'static str) -> Opt {
        Opt { name, takes: Takes::OptionalValue }
    }
}

/// Options every program has.
pub const HELP: Opt = Opt::flag("--help");
pub const VERSION: Opt = Opt::flag("--version");
pub const CONFIG: Opt = Opt::value("--config");

/// What was wrong with the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Unknown(String),
    NeedsValue(&'static str),
    TakesNoValue(&'static str),
}

impl Problem {
    /// The problem in the user's language.
    pub fn said(&self, t: &Texts) -> String {
        match self {
            Problem::Unknown(word) => t.usage_unknown_argument(format!("{word:?}")),
            Problem::NeedsValue(name) => t.usage_needs_value(name),
            Problem::TakesNoValue(name) => t.usage_takes_no_value(name),
        }
    }
}

/// The options given, in order: each with its value, if it took one.
pub type Given = Vec<(&'static str, Option<String>)>;

/// Reads `raw` (the arguments after the program's name) by `opts`.
pub fn parse(opts: &[Opt], raw: &[String]) -> Result<Given, Problem> {
    let mut given = Vec::new();
    let mut words = raw.iter().peekable();
    while let Some(word) = words.next() {
        let word = if word == "-h" { "--help" } else { word.as_str() };
        let (name, inline) = match word.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_string())),
            _ => (word, None),
        };
        let opt = opts.iter().find(|o| o.name == name);
        let Some(opt) = opt else { return Err(Problem::Unknown(word.to_string())) };
        let value = match (opt.takes, inline) {
            (Takes::Nothing, Some(_)) => return Err(Problem::TakesNoValue(opt.name)),
            (Takes::Nothing, None) => None,
            (_, Some(value)) => Some(value),
            (Takes::Value, None) => match words.next() {
                Some(value) => Some(value.clone()),
                None => return Err(Problem::NeedsValue(opt.name)),
            },
            (Takes::OptionalValue, None) => words.next_if(|next| !next.starts_with('-')).cloned(),
        };
        given.push((opt.name, value));
    }
    Ok(given)
}

/// The `--config` path among `raw`, read before the rest so that the
/// config's language says even a problem with the other options. Read
/// as [`parse`] reads it (`--config P` or `--config=P`); words it does
/// not know are passed over here and reported by `parse`.
pub fn config_path(raw: &[String]) -> Option<PathBuf> {
    let mut words = raw.iter();
    let mut found = None;
    while let Some(word) = words.next() {
        if let Some(path) = word.strip_prefix("--config=") {
            found = Some(PathBuf::from(path));
        } else if word == CONFIG.name {
            found = words.next().map(PathBuf::from);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: &[Opt] = &[HELP, CONFIG, Opt::flag("--json"), Opt::optional("--status")];

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn values_come_after_a_space_or_an_equals_sign() {
        let given = parse(OPTS, &words("--config /a --json --config=/b")).unwrap();
        assert_eq!(
            given,
            vec![
                ("--config", Some("/a".into())),
                ("--json", None),
                ("--config", Some("/b".into()))
            ]
        );
        assert_eq!(config_path(&words("--config /a --json --config=/b")), Some("/b".into()));
        assert_eq!(config_path(&words("--bogus --config /c")), Some("/c".into()));
    }

    #[test]
    fn an_optional_value_is_the_next_word_unless_it_is_an_option() {
        assert_eq!(
            parse(OPTS, &words("--status bob")).unwrap(),
            vec![("--status", Some("bob".into()))]
        );
        assert_eq!(
            parse(OPTS, &words("--status --json")).unwrap(),
            vec![("--status", None), ("--json", None)]
        );
        assert_eq!(parse(OPTS, &words("-h")).unwrap(), vec![("--help", None)]);
    }

    #[test]
    fn problems_are_named_and_said_in_the_users_language() {
        assert_eq!(parse(OPTS, &words("--nope")), Err(Problem::Unknown("--nope".into())));
        assert_eq!(parse(OPTS, &words("bob")), Err(Problem::Unknown("bob".into())));
        assert_eq!(parse(OPTS, &words("--config")), Err(Problem::NeedsValue("--config")));
        assert_eq!(parse(OPTS, &words("--json=yes")), Err(Problem::TakesNoValue("--json")));
        let nl = Problem::NeedsValue("--config").said(&Texts::new("nl"));
        assert!(nl.contains("--config") && nl.contains("waarde"), "{nl}");
        let en = Problem::Unknown("--nope".into()).said(&Texts::new("en"));
        assert_eq!(en, "unknown argument \"--nope\"");
    }
}
