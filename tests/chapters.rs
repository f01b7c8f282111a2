//! The chapters are what chapters/generate.rs makes from src/, the last one is
//! src/ itself, every chapter is a binary, and the notes quote only commands
//! that exist. (Running each chapter is in tests/container.rs: it needs root.)

#[path = "../chapters/generate.rs"]
mod generate;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use generate::{CHAPTERS, for_chapter, generate, number, rust_files};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn chapters_are_current() {
    let mut stale = Vec::new();
    for chapter in CHAPTERS {
        let dir = repo().join("chapters").join(chapter);
        let files = generate(&repo(), number(chapter)).unwrap_or_else(|e| panic!("{chapter}: {e}"));
        for (name, text) in &files {
            let path = dir.join(name);
            if fs::read_to_string(&path).ok().as_ref() != Some(text) {
                stale.push(format!("chapters/{chapter}/{name}"));
            }
        }
        let names: Vec<&String> = files.iter().map(|(name, _)| name).collect();
        for extra in rust_files(&dir).iter().filter(|old| !names.contains(old)) {
            stale.push(format!("chapters/{chapter}/{extra} (src/ makes no such file)"));
        }
    }
    assert!(
        stale.is_empty(),
        "not what src/ makes: {}\nrun `make chapters` and commit the result",
        stale.join(", ")
    );
}

#[test]
fn last_chapter_is_src() {
    let last = repo().join("chapters").join(CHAPTERS[CHAPTERS.len() - 1]);
    let src = repo().join("src");
    assert_eq!(rust_files(&last), rust_files(&src), "{} and src/ hold other files", last.display());
    for name in rust_files(&src) {
        let a = fs::read(src.join(&name)).unwrap_or_default();
        let b = fs::read(last.join(&name)).unwrap_or_default();
        assert!(a == b, "{}/{name} differs from src/{name}", last.display());
    }
}

#[test]
fn every_chapter_is_a_binary() {
    let manifest = fs::read_to_string(repo().join("Cargo.toml")).unwrap_or_default();
    for chapter in CHAPTERS {
        let entry =
            format!("[[bin]]\nname = \"ch{chapter}\"\npath = \"chapters/{chapter}/main.rs\"\n");
        assert!(manifest.contains(&entry), "Cargo.toml lacks:\n{entry}");
    }
}

/// Each chapter's notes, in both languages, and the table of contents.
fn notes() -> Vec<PathBuf> {
    let mut paths =
        vec![repo().join("chapters/README.md"), repo().join("chapters/README.zh-CN.md")];
    for chapter in CHAPTERS {
        for name in ["README.md", "README.zh-CN.md"] {
            paths.push(repo().join("chapters").join(chapter).join(name));
        }
    }
    paths
}

#[test]
fn notes_exist_in_both_languages() {
    let missing: Vec<String> =
        notes().iter().filter(|p| !p.is_file()).map(|p| p.display().to_string()).collect();
    assert!(missing.is_empty(), "missing notes: {}", missing.join(", "));
}

/// The flags a binary's --help lists, and whether each takes a value
/// (`-u, --uid <UID>`): exactly what that chapter accepts.
fn help_flags(binary: &str) -> Vec<(String, bool)> {
    let program = Path::new(env!("CARGO_BIN_EXE_toybox")).with_file_name(binary);
    let output = Command::new(&program).arg("--help").output();
    let help = output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    let mut flags = Vec::new();
    for line in help.lines().map(str::trim_start).filter(|l| l.starts_with('-')) {
        let takes_value = line.split("  ").next().unwrap_or("").contains('<');
        for word in line.split_whitespace().take_while(|w| w.starts_with('-')) {
            flags.push((word.trim_end_matches(',').to_string(), takes_value));
        }
    }
    flags
}

/// Commands in the notes run `./toybox` or a chapter binary `chNN-name`; each
/// must name a binary that exists, at the path cargo builds it to, and, up to
/// `-c`, only flags its --help lists.
#[test]
fn commands_in_notes_exist() {
    let binaries: Vec<String> = CHAPTERS.iter().map(|c| format!("ch{c}")).collect();
    let built = Path::new(env!("CARGO_BIN_EXE_toybox")).parent().unwrap_or(Path::new(""));
    let bin_dir = format!("{}/", built.strip_prefix(repo()).unwrap_or(built).display());
    let mut wrong = Vec::new();
    let mut seen = 0;
    for path in notes() {
        let text = fs::read_to_string(&path).unwrap_or_default();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            for (at, word) in words.iter().enumerate() {
                let binary = word.rsplit('/').next().unwrap_or(word);
                let is_chapter = binary.starts_with("ch")
                    && binary.len() > 5
                    && binary[2..4].bytes().all(|b| b.is_ascii_digit())
                    && binary.as_bytes()[4] == b'-';
                if !(is_chapter || binary == "toybox" && word.contains('/')) {
                    continue;
                }
                seen += 1;
                if is_chapter && !binaries.iter().any(|b| b == binary) {
                    wrong.push(format!("{}: no binary {binary}: {line}", path.display()));
                    continue;
                }
                let dir = word.strip_suffix(binary).unwrap_or("");
                if is_chapter && dir.contains("target/") && !dir.ends_with(&bin_dir) {
                    wrong.push(format!(
                        "{}: {binary} is built in {bin_dir}: {line}",
                        path.display()
                    ));
                }
                let flags = help_flags(binary);
                let mut rest = words[at + 1..].iter();
                while let Some(word) = rest.next().map(|w| w.trim_matches('`')) {
                    if !word.starts_with('-') || word == "-c" || word == "--command" {
                        break;
                    }
                    match flags.iter().find(|(flag, _)| flag == word) {
                        Some((_, true)) => {
                            rest.next();
                        }
                        Some((_, false)) => {}
                        None => wrong
                            .push(format!("{}: {binary} has no {word}: {line}", path.display())),
                    }
                }
            }
        }
    }
    assert!(seen > 0, "the notes quote no command at all");
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn generator_follows_the_markers() {
    let source = "\
a
b // >> 02
// before 03: old
new // >> 03
// >> 02 block
c
// >> 03 inner
d
// << 03
// << 02
e
";
    assert_eq!(for_chapter(source, 1, true).unwrap(), "a\nold\ne\n");
    assert_eq!(
        for_chapter(source, 2, true).unwrap(),
        "a\nb // >> 02\nold\n// >> 02 block\nc\n// << 02\ne\n"
    );
    assert_eq!(for_chapter(source, 3, true).unwrap(), source);
    // Without markers: only code, a replaced line once.
    assert_eq!(for_chapter(source, 2, false).unwrap(), "a\nb\nold\nc\ne\n");
    assert_eq!(for_chapter(source, 3, false).unwrap(), "a\nb\nnew\nc\nd\ne\n");
    assert!(for_chapter("// >> 02 x\n", 1, true).is_err());
    assert!(for_chapter("// << 02\n", 3, false).is_err());
    assert!(for_chapter("// >> 03 x\n// >> 02 y\n// << 02\n// << 03\n", 3, true).is_err());
}

/// A chapter marker as generate.rs reads one: a block line, a `before`
/// line, or a tag at the end of a line of code.
fn is_marker(line: &str) -> bool {
    let trimmed = line.trim();
    let numbered =
        |rest: &str| rest.get(..2).is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()));
    let tagged =
        trimmed.rsplit_once(" // >> ").is_some_and(|(_, tag)| tag.len() == 2 && numbered(tag));
    let block = ["// >> ", "// << ", "// before "]
        .iter()
        .any(|prefix| trimmed.strip_prefix(prefix).is_some_and(numbered));
    block || tagged
}

/// The lesson is the code: `chapters/diff.sh NN` shows no marker lines, a
/// replaced line shows once, and every chapter but the last has none.
#[test]
fn diffs_show_only_code() {
    for chapter in &CHAPTERS[1..] {
        let output = Command::new(repo().join("chapters/diff.sh"))
            .arg(&chapter[..2])
            .output()
            .unwrap_or_else(|e| panic!("chapters/diff.sh: {e}"));
        assert!(output.status.success(), "diff.sh {}: {:?}", &chapter[..2], output);
        let diff = String::from_utf8_lossy(&output.stdout);
        let changed = diff.lines().filter(|l| l.starts_with(['+', '-']) && !l.starts_with("+++"));
        let markers: Vec<&str> = changed.filter(|l| is_marker(&l[1..])).collect();
        assert!(markers.is_empty(), "diff.sh {}: marker lines {markers:?}", &chapter[..2]);
    }
    for chapter in &CHAPTERS[..CHAPTERS.len() - 1] {
        for name in rust_files(&repo().join("chapters").join(chapter)) {
            let text = fs::read_to_string(repo().join("chapters").join(chapter).join(&name));
            let text = text.unwrap_or_default();
            let left: Vec<&str> = text.lines().filter(|l| is_marker(l)).collect();
            assert!(left.is_empty(), "chapters/{chapter}/{name} keeps markers: {left:?}");
        }
    }
}

/// Words that name a mechanism, with the chapter that brings it: no
/// chapter's --help or module doc may name one before that chapter.
const FIRST_NAMED_IN: &[(&str, u32)] = &[
    ("rootfs", 2),
    ("namespace", 3),
    ("pid 1", 3),
    ("pivot", 4),
    ("private root", 4),
    ("uid map", 5),
    ("user namespace", 5),
    ("capabilit", 6),
    ("seccomp", 7),
    ("cgroup", 8),
    ("rlimit", 8),
    ("cgroup v2", 9),
    ("/dev", 10),
    ("/proc", 11),
    ("/sys", 11),
    ("environment", 12),
    ("working directory", 12),
    ("--init", 13),
    ("reap", 13),
    ("terminal", 14),
    ("pty", 14),
    ("toybox exec", 16),
    ("toybox ps", 15),
    ("unpack", 17),
    ("image", 17),
    ("layer", 17),
    ("--net", 18),
    ("loopback", 18),
    ("bridge", 18),
    ("publish", 18),
    ("resolv", 18),
    ("bundle", 19),
    ("config.json", 19),
];

/// Each chapter describes itself: its --help and its module doc (the `//!`
/// lines of its main.rs) name only mechanisms it has.
#[test]
fn snapshots_describe_only_themselves() {
    let built = Path::new(env!("CARGO_BIN_EXE_toybox")).parent().unwrap_or(Path::new(""));
    let mut early = Vec::new();
    for chapter in CHAPTERS {
        let help = Command::new(built.join(format!("ch{chapter}"))).arg("--help").output();
        let help = help.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        let help = help.unwrap_or_else(|e| panic!("ch{chapter} --help: {e}"));
        assert!(help.contains("Usage:"), "ch{chapter} --help printed no usage");
        let main = fs::read_to_string(repo().join("chapters").join(chapter).join("main.rs"));
        let main = main.unwrap_or_default();
        let doc: Vec<&str> = main.lines().filter(|l| l.starts_with("//!")).collect();
        // `[default: ./rootfs]` is a value, not a claim about the chapter.
        let (mut described, mut rest) = (String::new(), help.as_str());
        while let Some((before, after)) = rest.split_once("[default: ") {
            described.push_str(before);
            rest = after.split_once(']').map_or("", |(_, after)| after);
        }
        described.push_str(rest);
        let text = format!("{described}\n{}", doc.join("\n")).to_lowercase();
        for &(word, first) in FIRST_NAMED_IN {
            if number(chapter) < first && text.contains(word) {
                early.push(format!("{chapter} names {word:?} (chapter {first:02})"));
            }
        }
    }
    assert!(early.is_empty(), "{}", early.join("\n"));
}
