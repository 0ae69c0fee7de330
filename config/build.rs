//! Builds the message catalogs into the crate.
//!
//! Every `lang/*.toml` file becomes a language: adding one is adding a
//! file. `lang/en.toml` is the reference: each of its messages becomes a
//! method of `Texts` whose parameters are the message's `{placeholders}`,
//! so a message the code asks for exists, with the values it needs, or
//! the build fails. The texts become string constants in that method: no
//! catalog is read or parsed at run time. Every other catalog must parse and have the same
//! messages with the same placeholders, or the build fails too: a broken
//! translation must not ship and fall back to English unnoticed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

type Catalog = BTreeMap<String, BTreeMap<String, String>>;

/// Names a placeholder cannot have: it becomes a parameter name.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

fn main() {
    if let Err(e) = run() {
        println!("cargo::error={e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let dir = Path::new("lang");
    println!("cargo::rerun-if-changed=lang");
    let mut languages = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("lang/: {e}"))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let (Some(stem), Some("toml")) =
            (path.file_stem().and_then(|s| s.to_str()), path.extension().and_then(|s| s.to_str()))
        else {
            continue;
        };
        if stem.starts_with('.') {
            continue; // an editor's lock or backup file
        }
        println!("cargo::rerun-if-changed={}", path.display());
        let valid = (2..=3).contains(&stem.len()) && stem.bytes().all(|b| b.is_ascii_lowercase());
        if !valid {
            return Err(format!(
                "{}: name a catalog by its ISO 639 code, e.g. de.toml",
                path.display()
            ));
        }
        languages.push(stem.to_string());
    }
    languages.sort();
    let read = |lang: &str| -> Result<Catalog, String> {
        let text = std::fs::read_to_string(dir.join(format!("{lang}.toml")))
            .map_err(|e| format!("lang/{lang}.toml: {e}"))?;
        toml::from_str(&text).map_err(|e| format!("lang/{lang}.toml: {e}"))
    };
    let english = read("en")?;
    let mut others = Vec::new();
    for lang in languages.iter().filter(|l| *l != "en") {
        let catalog = read(lang)?;
        same_messages(lang, &catalog, &english)?;
        others.push((lang.as_str(), catalog));
    }

    let mut out = String::new();
    out.push_str("/// Every language built in, by ISO 639 code.\n");
    let _ = writeln!(out, "pub const LANGUAGES: &[&str] = &{languages:?};\n");
    out.push_str("impl Texts {\n");
    let mut methods = BTreeSet::new();
    for (table, messages) in &english {
        for (key, text) in messages {
            let name = format!("{table}_{key}");
            let snake = |s: &str| s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
            if !snake(table) || !snake(key) {
                return Err(format!("lang/en.toml: [{table}] {key}: use lowercase snake_case"));
            }
            if !methods.insert(name.clone()) {
                return Err(format!("lang/en.toml: [{table}] {key}: {name} is already a message"));
            }
            let params = placeholders(text);
            if let Some(p) = params.iter().find(|p| KEYWORDS.contains(&p.as_str())) {
                return Err(format!("lang/en.toml: [{table}] {key}: {{{p}}} is a Rust keyword"));
            }
            for line in text.lines().take(1) {
                let _ = writeln!(out, "    /// {}", line.replace('\t', "\\t"));
            }
            let args: String =
                params.iter().map(|p| format!(", {p}: impl std::fmt::Display")).collect();
            let pairs: Vec<String> =
                params.iter().map(|p| format!("({p:?}, {p}.to_string())")).collect();
            let mut arms = String::new();
            for (lang, catalog) in &others {
                if let Some(translated) = catalog.get(table).and_then(|t| t.get(key)) {
                    let _ = writeln!(arms, "            {lang:?} => {translated:?},");
                }
            }
            let _ = writeln!(
                out,
                "    pub fn {name}(&self{args}) -> String {{\n        let template = match self.code {{\n{arms}            _ => {text:?},\n        }};\n        fill(template, &[{}])\n    }}",
                pairs.join(", ")
            );
        }
    }
    out.push_str("}\n");
    let target =
        Path::new(&std::env::var("OUT_DIR").map_err(|e| e.to_string())?).join("catalogs.rs");
    std::fs::write(&target, out).map_err(|e| format!("{}: {e}", target.display()))
}

/// `lang`'s catalog has exactly English's messages, each with the same
/// placeholders, none empty.
fn same_messages(lang: &str, catalog: &Catalog, english: &Catalog) -> Result<(), String> {
    for (table, messages) in english {
        for (key, text) in messages {
            let Some(translated) = catalog.get(table).and_then(|t| t.get(key)) else {
                return Err(format!("lang/{lang}.toml lacks [{table}] {key}"));
            };
            let want: BTreeSet<String> = placeholders(text).into_iter().collect();
            let have: BTreeSet<String> = placeholders(translated).into_iter().collect();
            if want != have {
                return Err(format!(
                    "lang/{lang}.toml [{table}] {key}: placeholders {have:?}, English has {want:?}"
                ));
            }
            if translated.trim().is_empty() {
                return Err(format!("lang/{lang}.toml [{table}] {key} is empty"));
            }
        }
    }
    for (table, messages) in catalog {
        for key in messages.keys() {
            if !english.get(table).is_some_and(|t| t.contains_key(key)) {
                return Err(format!(
                    "lang/{lang}.toml has [{table}] {key}, which en.toml does not"
                ));
            }
        }
    }
    Ok(())
}

/// The `{name}` placeholders of a message, in order of first appearance.
fn placeholders(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        rest = &rest[start + 1..];
        let Some(end) = rest.find('}') else { break };
        let name = &rest[..end];
        if !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            && !found.iter().any(|f| f == name)
        {
            found.push(name.to_string());
        }
    }
    found
}
