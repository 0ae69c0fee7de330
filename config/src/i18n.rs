//! What users read, in their language.
//!
//! The messages live in `config/lang/<code>.toml`, one file per language.
//! `build.rs` turns them into code: `en.toml` is the reference, each of
//! its messages a method of [`Texts`] holding every language's text as a
//! constant, and a catalog that lacks a message or changes a placeholder
//! fails the build. Nothing is read or parsed at run time, so the PAM
//! module inside sudo opens no file for them and keeps nothing around.
//!
//! Only what users see goes through here. Logs for administrators stay in
//! English, and so do config errors (read by the administrator who wrote
//! the file).

include!(concat!(env!("OUT_DIR"), "/catalogs.rs"));

/// The config and PAM value that means "from the user's locale".
pub const AUTO: &str = "auto";

/// The language used when nothing else is asked for or available.
pub const FALLBACK: &str = "en";

/// The built-in languages, by ISO 639 code.
pub fn languages() -> impl Iterator<Item = &'static str> {
    LANGUAGES.iter().copied()
}

/// The locale a program runs in, from `LC_ALL`, `LC_MESSAGES`, `LANG` and
/// GNU's `LANGUAGE` list, as gettext reads them: the first built-in
/// language of `LANGUAGE`, then the locale's own; none for the C locale.
///
/// Only picks among the built-in catalogs: a value from a hostile caller's
/// environment can choose English or Dutch, nothing else.
pub fn from_locale(var: impl Fn(&str) -> Option<String>) -> Option<&'static str> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    let locale = set("LC_ALL").or_else(|| set("LC_MESSAGES")).or_else(|| set("LANG"))?;
    let language = |value: &str| -> Option<&'static str> {
        let code = value.split(['_', '.', '@']).next().unwrap_or_default();
        languages().find(|l| *l == code)
    };
    let base = locale.split(['_', '.', '@']).next().unwrap_or_default();
    if base == "C" || base == "POSIX" {
        return None;
    }
    let listed = set("LANGUAGE").unwrap_or_default();
    listed.split(':').find_map(language).or_else(|| language(&locale))
}

/// The messages of one language (a method per message, generated from
/// the catalogs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Texts {
    code: &'static str,
}

impl Texts {
    /// The language `code` if built in, else English.
    pub fn new(code: &str) -> Texts {
        Texts { code: languages().find(|l| *l == code).unwrap_or(FALLBACK) }
    }

    /// English.
    pub fn english() -> Texts {
        Texts::new(FALLBACK)
    }

    /// A setting (`"auto"` or a language) applied: `"auto"` takes the
    /// locale from `var` (a program's environment), else English.
    pub fn for_setting(setting: &str, var: impl Fn(&str) -> Option<String>) -> Texts {
        if setting == AUTO {
            Texts::new(from_locale(var).unwrap_or(FALLBACK))
        } else {
            Texts::new(setting)
        }
    }

    /// `setting` with this process's environment as the locale: for the
    /// user's own programs (mfa-enroll, mfa-approve, and inside sudo the
    /// invoking user's locale).
    pub fn for_process(setting: &str) -> Texts {
        Texts::for_setting(setting, |name| std::env::var(name).ok())
    }

    /// The ISO 639 code of the language in use.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

/// Replaces each `{name}` of `template` by its value in `args`; braces
/// around anything else are kept as written.
fn fill(template: &str, args: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let value = after
            .find('}')
            .and_then(|end| args.iter().find(|(n, _)| *n == &after[..end]).map(|(_, v)| (end, v)));
        match value {
            Some((end, value)) => {
                out.push_str(value);
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Pads `label` with spaces to `width` characters (not bytes: labels may
/// hold letters like ë).
pub fn pad(label: &str, width: usize) -> String {
    let n = label.chars().count();
    format!("{label}{}", " ".repeat(width.saturating_sub(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_and_dutch_are_built_in() {
        let all: Vec<_> = languages().collect();
        assert!(all.contains(&"en") && all.contains(&"nl"), "{all:?}");
    }

    #[test]
    fn each_language_has_its_own_texts() {
        let (en, nl) = (Texts::new("en"), Texts::new("nl"));
        assert_eq!(en.pam_wrong_code(), "Wrong code.");
        assert_eq!(nl.pam_wrong_code(), "Onjuiste code.");
        assert_eq!(
            nl.pam_locked_until("10:15 UTC"),
            "Te veel onjuiste codes: geblokkeerd tot 10:15 UTC."
        );
        assert!(nl.help_enroll().starts_with("mfa-enroll - "), "{}", nl.help_enroll());
    }

    #[test]
    fn placeholders_are_filled_and_other_braces_kept() {
        let args = [("until", "10:15 UTC".to_string())];
        assert_eq!(fill("locked until {until}.", &args), "locked until 10:15 UTC.");
        assert_eq!(fill("{until}{until}", &args), "10:15 UTC10:15 UTC");
        assert_eq!(fill("a {b} {", &args), "a {b} {");
        assert_eq!(fill("", &args), "");
    }

    #[test]
    fn a_value_is_not_expanded_again() {
        // A value that looks like a placeholder (a user's command line)
        // stays as typed.
        let args = [("a", "{b}".to_string()), ("b", "x".to_string())];
        assert_eq!(fill("{a} {b}", &args), "{b} x");
    }

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_locale_is_read_as_gettext_reads_it() {
        assert_eq!(from_locale(env(&[("LANG", "nl_NL.UTF-8")])), Some("nl"));
        assert_eq!(from_locale(env(&[("LANG", "nl_BE@euro")])), Some("nl"));
        assert_eq!(from_locale(env(&[("LANG", "en_GB.UTF-8")])), Some("en"));
        // LC_ALL wins over LANG, LC_MESSAGES over LANG.
        assert_eq!(from_locale(env(&[("LANG", "nl_NL"), ("LC_ALL", "en_US")])), Some("en"));
        assert_eq!(from_locale(env(&[("LANG", "en_US"), ("LC_MESSAGES", "nl_NL")])), Some("nl"));
        // LANGUAGE's first built-in language, but not in the C locale.
        assert_eq!(from_locale(env(&[("LANG", "xx_XX"), ("LANGUAGE", "xx:nl:en")])), Some("nl"));
        assert_eq!(from_locale(env(&[("LANG", "C.UTF-8"), ("LANGUAGE", "nl")])), None);
        assert_eq!(from_locale(env(&[("LANG", "POSIX")])), None);
        // Nothing set, empty, or not built in: no choice (English).
        assert_eq!(from_locale(env(&[])), None);
        assert_eq!(from_locale(env(&[("LANG", "")])), None);
        assert_eq!(from_locale(env(&[("LANG", "xx_XX.UTF-8")])), None);
        assert_eq!(from_locale(env(&[("LANG", "../../etc/passwd")])), None);
    }

    #[test]
    fn a_setting_names_a_language_or_defers_to_the_locale() {
        let dutch = env(&[("LANG", "nl_NL.UTF-8")]);
        assert_eq!(Texts::for_setting("auto", &dutch).code(), "nl");
        assert_eq!(Texts::for_setting("en", &dutch).code(), "en");
        assert_eq!(Texts::for_setting("nl", env(&[])).code(), "nl");
        assert_eq!(Texts::for_setting("auto", env(&[])).code(), "en");
        assert_eq!(Texts::new("xx").code(), "en");
    }

    #[test]
    fn the_prompt_is_the_one_design_md_fixes_and_dutch_differs() {
        assert_eq!(Texts::english().pam_prompt(), "Verification code: ");
        assert_eq!(Texts::new("nl").pam_prompt(), "Verificatiecode: ");
    }

    #[test]
    fn labels_pad_by_characters() {
        assert_eq!(pad("geëindigd:", 12), "geëindigd:  ");
        assert_eq!(pad("long label", 3), "long label");
    }
}
