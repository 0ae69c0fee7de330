//! Builds the message catalogs into the crate.
//!
//! Every `lang/*.toml` file becomes a language: adding one is adding a
//! file. `lang/en.toml` is the reference: each of its messages becomes a
//! method of `Texts` whose parameters are the message's `{placeholders}`,
//! so a message the code asks for exists, with the values it needs, or
//! the build fails. Tests (`i18n.rs`) hold every other catalog to it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

type Catalog = BTreeMap<String, BTreeMap<String, String>>;

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
        println!("cargo::rerun-if-changed={}", path.display());
        let (Some(stem), Some("toml")) =
            (path.file_stem().and_then(|s| s.to_str()), path.extension().and_then(|s| s.to_str()))
        else {
            continue;
        };
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
    let english =
        std::fs::read_to_string(dir.join("en.toml")).map_err(|e| format!("lang/en.toml: {e}"))?;
    let english: Catalog = toml::from_str(&english).map_err(|e| format!("lang/en.toml: {e}"))?;

    let root = std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?;
    let mut out = String::new();
    out.push_str("/// Every language built in: (ISO 639 code, catalog text).\n");
    out.push_str("pub const CATALOGS: &[(&str, &str)] = &[\n");
    for lang in &languages {
        let _ = writeln!(
            out,
            "    ({lang:?}, include_str!({:?})),",
            format!("{root}/lang/{lang}.toml")
        );
    }
    out.push_str("];\n\nimpl Texts {\n");
    for (table, messages) in &english {
        for (key, text) in messages {
            let name = format!("{table}_{key}");
            if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return Err(format!(
                    "lang/en.toml: [{table}] {key}: use lowercase snake_case names"
                ));
            }
            let params = placeholders(text);
            for line in text.lines().take(1) {
                let _ = writeln!(out, "    /// {}", line.replace('\t', "\\t"));
            }
            let args: Vec<String> =
                params.iter().map(|p| format!("{p}: impl std::fmt::Display")).collect();
            let pairs: Vec<String> =
                params.iter().map(|p| format!("({p:?}, {p}.to_string())")).collect();
            let _ = writeln!(
                out,
                "    pub fn {name}(&self{}) -> String {{\n        self.render({table:?}, {key:?}, &[{}])\n    }}",
                args.iter().map(|a| format!(", {a}")).collect::<String>(),
                pairs.join(", ")
            );
        }
    }
    out.push_str("}\n");
    let target =
        Path::new(&std::env::var("OUT_DIR").map_err(|e| e.to_string())?).join("catalogs.rs");
    std::fs::write(&target, out).map_err(|e| format!("{}: {e}", target.display()))
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
