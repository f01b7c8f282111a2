//! Makes the chapters under chapters/ from src/, the way Crafting
//! Interpreters makes its per-chapter code: src/ carries the markers and each
//! chapter is cut out of it.
//!
//!   `code // >> NN`                 the line arrives in chapter NN
//!   `// >> NN title` .. `// << NN`  the lines between arrive in chapter NN
//!   `// before NN: code`            chapters before NN have `code` here
//!
//! The last chapter keeps the markers, so it is src/ byte for byte; the
//! others lose them, so each reads (and diffs) as plain code. A chapter's
//! module files are the ones its main.rs declares with `mod`.
//!
//! `make chapters` runs this (plain rustc, no dependencies, so it works even
//! while the chapters do not build); tests/chapters.rs checks that the
//! committed chapters are what it makes.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// In teaching order; `chapters/<name>/main.rs` builds as the binary `ch<name>`.
pub const CHAPTERS: &[&str] = &[
    "01-skeleton",
    "02-checks",
    "03-namespaces",
    "04-mounts",
    "05-user-namespace",
    "06-capabilities",
    "07-seccomp",
    "08-cgroups",
    "09-cgroup-v2",
    "10-dev",
    "11-proc",
    "12-environment",
    "13-init",
    "14-terminal",
    "15-ps",
    "16-exec",
    "17-images",
    "18-network",
    "19-oci",
];

pub fn number(chapter: &str) -> u32 {
    chapter[..2].parse().unwrap_or(0)
}

/// `// >> NN ...` or `// << NN` on a line of its own: (opens, NN).
fn block_marker(line: &str) -> Option<(bool, u32)> {
    let trimmed = line.trim();
    let (opens, rest) = if let Some(rest) = trimmed.strip_prefix("// >> ") {
        (true, rest)
    } else {
        (false, trimmed.strip_prefix("// << ")?)
    };
    let digits = rest.get(..2).filter(|d| d.bytes().all(|b| b.is_ascii_digit()))?;
    Some((opens, digits.parse().ok()?))
}

/// `code // >> NN` at the end of a line of code: NN.
fn line_marker(line: &str) -> Option<u32> {
    let (code, tag) = line.trim_end().rsplit_once(" // >> ")?;
    if code.trim().is_empty() || tag.len() != 2 {
        return None;
    }
    tag.parse().ok()
}

/// `// before NN: code`: (NN, the line with `code` in the comment's place).
fn before_marker(line: &str) -> Option<(u32, String)> {
    let indent = &line[..line.len() - line.trim_start().len()];
    let rest = line.trim_start().strip_prefix("// before ")?;
    let (number, code) = rest.split_once(": ")?;
    Some((number.parse().ok()?, format!("{indent}{code}")))
}

/// `source` as chapter `chapter` has it, with its markers or without.
pub fn for_chapter(source: &str, chapter: u32, markers: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut open: Vec<u32> = Vec::new(); // the blocks we are inside
    for (index, line) in source.split_inclusive('\n').enumerate() {
        let here = || format!("line {}", index + 1);
        let shown = open.iter().all(|&n| n <= chapter);
        match block_marker(line) {
            Some((true, n)) => {
                if let Some(&outer) = open.last()
                    && n < outer
                {
                    return Err(format!("{}: block {n} inside block {outer}", here()));
                }
                open.push(n);
                if markers && shown && n <= chapter {
                    out.push_str(line);
                }
            }
            Some((false, n)) => {
                if open.pop() != Some(n) {
                    return Err(format!("{}: `// << {n}` closes no open `// >> {n}`", here()));
                }
                if markers && shown && n <= chapter {
                    out.push_str(line);
                }
            }
            None if !shown => {}
            None => match (line_marker(line), before_marker(line)) {
                (Some(n), _) if n > chapter => {}
                (_, Some((n, code))) if n > chapter => out.push_str(&code),
                (Some(_), _) if !markers => {
                    let code = line.trim_end().rsplit_once(" // >> ").map_or(line, |(c, _)| c);
                    out.push_str(code.trim_end());
                    out.push('\n');
                }
                (_, Some(_)) if !markers => {}
                _ => out.push_str(line),
            },
        }
    }
    match open.last() {
        Some(n) => Err(format!("`// >> {n}` is never closed")),
        None => Ok(out),
    }
}

/// The module a line such as `mod terminal; // >> 03` declares.
fn declared_module(line: &str) -> Option<&str> {
    let name = line.strip_prefix("mod ")?.split(';').next()?;
    name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_').then_some(name)
}

/// (file name, text) of every file of chapter `chapter`, made from src/.
pub fn generate(repo: &Path, chapter: u32) -> Result<Vec<(String, String)>, String> {
    let read = |name: &str| {
        let path = repo.join("src").join(name);
        fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let last = CHAPTERS.last().map(|c| number(c)) == Some(chapter);
    let cut = |name: &str| {
        let text = for_chapter(&read(name)?, chapter, last);
        let text = text.map_err(|e| format!("src/{name}: {e}"))?;
        rustfmt(repo, &text).map_err(|e| format!("src/{name} for chapter {chapter}: {e}"))
    };
    let main = cut("main.rs")?;
    let mut files = vec![("main.rs".to_string(), main.clone())];
    for module in main.lines().filter_map(declared_module) {
        let name = format!("{module}.rs");
        files.push((name.clone(), cut(&name)?));
    }
    Ok(files)
}

/// Cutting lines out leaves blank lines twice over, and a call that lost an
/// argument may fit on one line: rustfmt lays each chapter out as `cargo fmt`
/// would. src/ is already formatted, so the last chapter stays byte-identical.
fn rustfmt(repo: &Path, text: &str) -> Result<String, String> {
    let config = repo.join("rustfmt.toml");
    // `make` names the rustfmt beside its cargo: sudo's PATH may lack both.
    let program = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    let mut child = Command::new(program)
        .args(["--edition", "2024", "--config-path"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("rustfmt: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("rustfmt: no stdin")?;
    let input = text.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().map_err(|e| format!("rustfmt: {e}"))?;
    let _ = writer.join();
    if !output.status.success() {
        return Err(format!("rustfmt: {}", String::from_utf8_lossy(&output.stderr)));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("rustfmt: {e}"))
}

/// The .rs files in a directory, sorted.
pub fn rust_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".rs"))
        .collect();
    names.sort();
    names
}

/// Write every chapter's files, removing .rs files src/ no longer makes.
pub fn write_chapters(repo: &Path) -> Result<(), String> {
    for chapter in CHAPTERS {
        let dir = repo.join("chapters").join(chapter);
        let files = generate(repo, number(chapter)).map_err(|e| format!("{chapter}: {e}"))?;
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for old in rust_files(&dir) {
            if !files.iter().any(|(name, _)| *name == old) {
                let path = dir.join(old);
                fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        for (name, text) in &files {
            let path = dir.join(name);
            fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Run from the repository's root: `make chapters`.
#[allow(dead_code)] // the tests include this file for its functions
fn main() {
    if let Err(e) = write_chapters(Path::new(".")) {
        eprintln!("generate: {e}");
        std::process::exit(1);
    }
}
