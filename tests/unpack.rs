//! `toybox unpack` against real images (umoci builds them, umoci unpacks them
//! for comparison), the same image as a docker-save tar, and hostile layers
//! built here byte by byte. A plain harness like tests/container.rs: a test
//! that cannot run here says SKIP and why.
//!
//! Every hostile layer is unpacked next to a canary file: after the run the
//! canary is unchanged and the parent directory holds nothing new.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use sha2::{Digest, Sha256};

mod harness;

type Outcome = Result<(), String>;

const TOYBOX: &str = env!("CARGO_BIN_EXE_toybox");

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lab() -> PathBuf {
    repo_root().join("target/unpack-lab")
}

/// A fresh, empty directory for one test.
fn fresh(name: &str) -> Result<PathBuf, String> {
    let dir = lab().join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    Ok(dir)
}

fn expect(condition: bool, message: impl FnOnce() -> String) -> Outcome {
    if condition { Ok(()) } else { Err(message()) }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!("exit {:?}\nstdout:\n{}stderr:\n{}", self.code, self.stdout, self.stderr)
    }
}

fn run(command: &mut Command) -> Result<Run, String> {
    let output = command.stdin(Stdio::null()).output().map_err(|e| format!("{command:?}: {e}"))?;
    Ok(Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

fn unpack(args: &[&str], source: &Path, dest: &Path) -> Result<Run, String> {
    run(Command::new(TOYBOX).arg("unpack").args(args).arg(source).arg(dest))
}

fn expect_ok(run: &Run, what: &str) -> Outcome {
    expect(run.code == Some(0), || format!("{what}: want exit 0\n{}", run.describe()))
}

fn expect_one_line_error(run: &Run, needle: &str) -> Outcome {
    let lines: Vec<&str> = run.stderr.lines().collect();
    expect(
        run.code == Some(125)
            && lines.len() == 1
            && lines[0].starts_with("toybox: unpack: ")
            && lines[0].contains(needle),
        || format!("want exit 125 and one error line with {needle:?}\n{}", run.describe()),
    )
}

fn sha256(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn write(path: &Path, bytes: &[u8]) -> Outcome {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
    }
    fs::write(path, bytes).map_err(|e| format!("write {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------
// Tars written by hand: every field is ours, `..` and all.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Tar(Vec<u8>);

fn octal(field: &mut [u8], value: u64) {
    let text = format!("{value:0width$o}", width = field.len() - 1);
    field[..text.len()].copy_from_slice(text.as_bytes());
}

impl Tar {
    /// A ustar header: name, type (b'0' file, b'1' hard link, b'2' symlink,
    /// b'3' char device, b'5' directory, b'x' pax), size as claimed.
    fn header(&mut self, name: &[u8], kind: u8, size: u64, link: &[u8], mode: u32, uid: u32) {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name);
        octal(&mut h[100..108], mode as u64);
        octal(&mut h[108..116], uid as u64);
        octal(&mut h[116..124], uid as u64);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], 1_700_000_000);
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        let text = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(text.as_bytes());
        self.0.extend_from_slice(&h);
    }

    fn data(&mut self, data: &[u8]) {
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0, pad));
    }

    fn file(mut self, name: &str, data: &[u8]) -> Self {
        self.header(name.as_bytes(), b'0', data.len() as u64, b"", 0o644, 0);
        self.data(data);
        self
    }

    fn file_as(mut self, name: &str, data: &[u8], mode: u32, uid: u32) -> Self {
        self.header(name.as_bytes(), b'0', data.len() as u64, b"", mode, uid);
        self.data(data);
        self
    }

    fn device(mut self, name: &str, major: u32, minor: u32) -> Self {
        self.header(name.as_bytes(), b'3', 0, b"", 0o666, 0);
        let at = self.0.len() - 512;
        let h = &mut self.0[at..at + 512];
        octal(&mut h[329..337], major as u64);
        octal(&mut h[337..345], minor as u64);
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self
    }

    fn dir(mut self, name: &str) -> Self {
        self.header(name.as_bytes(), b'5', 0, b"", 0o755, 0);
        self
    }

    fn symlink(mut self, name: &str, target: &str) -> Self {
        self.header(name.as_bytes(), b'2', 0, target.as_bytes(), 0o777, 0);
        self
    }

    fn hardlink(mut self, name: &str, target: &str) -> Self {
        self.header(name.as_bytes(), b'1', 0, target.as_bytes(), 0o644, 0);
        self
    }

    /// A pax header for the next entry: `records` as `key=value`.
    fn pax(mut self, records: &[(&str, &[u8])]) -> Self {
        let mut body = Vec::new();
        for (key, value) in records {
            let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
            let mut len = rest + 1;
            while len != rest + len.to_string().len() {
                len = rest + len.to_string().len();
            }
            body.extend_from_slice(format!("{len} {key}=").as_bytes());
            body.extend_from_slice(value);
            body.push(b'\n');
        }
        self.header(b"PaxHeaders/x", b'x', body.len() as u64, b"", 0o644, 0);
        self.data(&body);
        self
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.extend(std::iter::repeat_n(0, 1024));
        self.0
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// An OCI layout in `dir` of `layers` (each a tar, gzipped when `gz`).
fn oci_layout(dir: &Path, layers: &[Vec<u8>], gz: bool, config: &str) -> Result<(), String> {
    let blobs: Vec<(Vec<u8>, Vec<u8>)> =
        layers.iter().map(|tar| (if gz { gzip(tar) } else { tar.clone() }, tar.clone())).collect();
    oci_layout_of_blobs(dir, &blobs, config)
}

/// An OCI layout of (blob as stored, the tar it holds) pairs.
fn oci_layout_of_blobs(dir: &Path, layers: &[(Vec<u8>, Vec<u8>)], config: &str) -> Outcome {
    let blob = |bytes: &[u8]| -> Result<String, String> {
        let digest = sha256(bytes);
        write(&dir.join("blobs/sha256").join(&digest[7..]), bytes)?;
        Ok(digest)
    };
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for (bytes, tar) in layers {
        diff_ids.push(format!("\"{}\"", sha256(tar)));
        let media = match bytes.get(..4) {
            Some([0x1f, 0x8b, ..]) => "tar+gzip",
            Some([0x28, 0xb5, 0x2f, 0xfd]) => "tar+zstd",
            _ => "tar",
        };
        descriptors.push(format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.{media}","digest":"{}","size":{}}}"#,
            blob(bytes)?,
            bytes.len()
        ));
    }
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{config},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    );
    let config_digest = blob(config.as_bytes())?;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{}]}}"#,
        config.len(),
        descriptors.join(",")
    );
    let manifest_digest = blob(manifest.as_bytes())?;
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"test"}}}}]}}"#,
        manifest.len()
    );
    write(&dir.join("index.json"), index.as_bytes())?;
    write(&dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
}

// ---------------------------------------------------------------------------
// Trees compared file by file.
// ---------------------------------------------------------------------------

/// path -> "type mode uid:gid size sha256 link", for every entry under `root`.
fn describe_tree(root: &Path, shift: i64) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).map_err(|e| format!("read {}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(|e| e.to_string())?;
            let kind = meta.file_type();
            let (t, extra) = if kind.is_dir() {
                stack.push(path.clone());
                ("d", String::new())
            } else if kind.is_symlink() {
                let target = fs::read_link(&path).map_err(|e| e.to_string())?;
                ("l", target.display().to_string())
            } else if kind.is_file() {
                let bytes = fs::read(&path).map_err(|e| e.to_string())?;
                ("f", format!("{} {}", meta.len(), sha256(&bytes)))
            } else {
                ("o", format!("rdev {}", meta.rdev()))
            };
            let relative = path.strip_prefix(root).map_err(|e| e.to_string())?;
            let line = format!(
                "{t} {:o} {}:{} {extra}",
                meta.mode() & 0o7777,
                meta.uid() as i64 - shift,
                meta.gid() as i64 - shift
            );
            out.insert(relative.display().to_string(), line);
        }
    }
    Ok(out)
}

fn expect_same_tree(a: &Path, shift_a: i64, b: &Path, shift_b: i64) -> Outcome {
    let (ta, tb) = (describe_tree(a, shift_a)?, describe_tree(b, shift_b)?);
    let mut differences = Vec::new();
    for (path, line) in &ta {
        match tb.get(path) {
            Some(other) if other == line => {}
            other => differences.push(format!("{path}: {line} vs {other:?}")),
        }
    }
    for path in tb.keys().filter(|p| !ta.contains_key(*p)) {
        differences.push(format!("{path}: only in {}", b.display()));
    }
    expect(differences.is_empty(), || {
        let shown: Vec<&String> = differences.iter().take(10).collect();
        format!(
            "{} and {} differ in {} entries:\n  {}",
            a.display(),
            b.display(),
            differences.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  ")
        )
    })
}

// ---------------------------------------------------------------------------
// Real images: umoci makes and unpacks them.
// ---------------------------------------------------------------------------

fn umoci(args: &[&str], dir: &Path) -> Outcome {
    let r = run(Command::new("umoci").args(args).current_dir(dir))?;
    expect(r.code == Some(0), || format!("umoci {}: {}", args.join(" "), r.describe()))
}

/// The busybox tree the umoci image is made of (busybox-rootfs.sh --no-shift).
const IMAGE_ROOTFS: &str = "target/image-rootfs";

/// A two-layer image of the test rootfs: the second layer deletes
/// /etc/group, replaces the directory /usr/sbin with a new one holding one
/// file and the directory /home/user with a file, so umoci writes the
/// whiteouts. Returns the layout's directory.
fn umoci_image(dir: &Path) -> Result<PathBuf, String> {
    let rootfs = repo_root().join(IMAGE_ROOTFS);
    umoci(&["init", "--layout", "img"], dir)?;
    umoci(&["new", "--image", "img:test"], dir)?;
    umoci(&["unpack", "--image", "img:test", "bundle"], dir)?;
    let copy =
        run(Command::new("cp").arg("-a").arg(rootfs.join(".")).arg(dir.join("bundle/rootfs")))?;
    expect(copy.code == Some(0), || format!("cp -a: {}", copy.describe()))?;
    umoci(&["repack", "--image", "img:test", "bundle"], dir)?;
    // A bundle diffs against the image it was unpacked from: unpack the
    // one-layer image again, so that the next repack is a second layer.
    fs::remove_dir_all(dir.join("bundle")).map_err(|e| format!("rm bundle: {e}"))?;
    umoci(&["unpack", "--image", "img:test", "bundle"], dir)?;
    let root = dir.join("bundle/rootfs");
    let change = || -> std::io::Result<()> {
        fs::remove_file(root.join("etc/group"))?;
        fs::remove_dir_all(root.join("usr/sbin"))?;
        fs::create_dir(root.join("usr/sbin"))?;
        fs::write(root.join("usr/sbin/hello"), "#!/bin/sh\necho hello from layer 2\n")?;
        fs::set_permissions(root.join("usr/sbin/hello"), fs::Permissions::from_mode_ext(0o755))?;
        fs::remove_dir_all(root.join("home/user"))?;
        fs::write(root.join("home/user"), "now a file\n")
    };
    change().map_err(|e| format!("change the bundle: {e}"))?;
    umoci(&["repack", "--image", "img:test", "bundle"], dir)?;
    umoci(
        &[
            "config",
            "--image",
            "img:test",
            "--config.cmd",
            "/usr/sbin/hello",
            "--config.env",
            "GREETING=hi there",
            "--config.workingdir",
            "/tmp",
            "--config.user",
            "user",
            "--config.exposedports",
            "8080/tcp",
        ],
        dir,
    )?;
    Ok(dir.join("img"))
}

trait ModeExt {
    fn from_mode_ext(mode: u32) -> Self;
}

impl ModeExt for fs::Permissions {
    fn from_mode_ext(mode: u32) -> Self {
        std::os::unix::fs::PermissionsExt::from_mode(mode)
    }
}

fn umoci_image_matches_umoci_unpack() -> Outcome {
    let dir = fresh("umoci")?;
    let image = umoci_image(&dir)?;
    umoci(&["unpack", "--image", "img:test", "reference"], &dir)?;
    let reference = dir.join("reference/rootfs");
    // Two layers, the second with umoci's own whiteouts.
    let whiteouts = layer_names(&image)?;
    expect(whiteouts.len() == 2, || format!("{} layers, want 2", whiteouts.len()))?;
    let second: Vec<&String> = whiteouts[1].iter().filter(|n| n.contains(".wh.")).collect();
    expect(second.iter().any(|n| n.ends_with("etc/.wh.group")), || {
        format!("no etc/.wh.group in layer 2: {second:?}")
    })?;

    // umoci unpack as root keeps the image's ids: compare with --no-shift.
    let plain = dir.join("plain");
    let r = unpack(&["--no-shift"], &image, &plain)?;
    expect_ok(&r, "unpack --no-shift")?;
    expect_same_tree(&reference, 0, &plain, 0)?;
    // The whiteouts did their work.
    expect(!plain.join("etc/group").exists(), || "etc/group survived its whiteout".into())?;
    let sbin: Vec<_> = fs::read_dir(plain.join("usr/sbin")).map_err(|e| e.to_string())?.collect();
    expect(sbin.len() == 1, || format!("usr/sbin has {} entries, want 1", sbin.len()))?;

    // Shifted: the same tree, every owner 10000 higher.
    let shifted = dir.join("shifted");
    let r = unpack(&[], &image, &shifted)?;
    expect_ok(&r, "unpack")?;
    expect_same_tree(&reference, 0, &shifted, 10000)?;

    // The command line it prints runs the image.
    let line = r.stdout.lines().skip_while(|l| *l != "run it with:").nth(1).unwrap_or("").trim();
    expect(line.starts_with("toybox -m "), || format!("no command line\n{}", r.describe()))?;
    let command = format!("{TOYBOX}{}", &line["toybox".len()..]);
    let started = run(Command::new("/bin/sh").arg("-c").arg(&command))?;
    expect(started.stdout == "hello from layer 2\n", || {
        format!("{command}: want the image's Cmd output\n{}", started.describe())
    })?;
    expect(line.contains("-e 'GREETING=hi there'") && line.contains("-w /tmp"), || {
        format!("env and workdir missing from {line:?}")
    })?;
    // User `user` is uid 1000 in the image's /etc/passwd; the port has no flag of its own.
    expect(line.contains("-u 1000 "), || format!("User user is not -u 1000 in {line:?}"))?;
    expect(r.stdout.contains("# to publish a port add --net bridge -p HOSTPORT:8080"), || {
        format!("no note for ExposedPorts\n{}", r.describe())
    })?;

    // Root inside owns /etc of the shifted tree; what it makes is host 10000.
    let r = run(Command::new(TOYBOX).arg("-m").arg(&shifted).args([
        "-u",
        "0",
        "-c",
        "/bin/sh",
        "-c",
        "echo x >> /etc/passwd && touch /etc/made-inside && echo done",
    ]))?;
    expect(r.stdout == "done\n", || format!("root inside cannot write /etc\n{}", r.describe()))?;
    let made = fs::symlink_metadata(shifted.join("etc/made-inside")).map_err(|e| e.to_string())?;
    expect(made.uid() == 10000 && made.gid() == 10000, || {
        format!("a file root made inside is host {}:{}, want 10000", made.uid(), made.gid())
    })
}

/// A blob of an OCI layout, by its `sha256:…` digest.
fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

/// The manifest of the OCI layout's only image.
fn only_manifest(layout: &Path) -> Result<serde_json::Value, String> {
    let read_json = |path: &Path| -> Result<serde_json::Value, String> {
        let bytes = fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let index = read_json(&layout.join("index.json"))?;
    read_json(&blob_path(layout, index["manifests"][0]["digest"].as_str().unwrap_or("")))
}

/// The entry names of each layer of the OCI layout's only image.
fn layer_names(layout: &Path) -> Result<Vec<Vec<String>>, String> {
    let blob = |digest: &str| blob_path(layout, digest);
    let manifest = only_manifest(layout)?;
    let mut layers = Vec::new();
    for layer in manifest["layers"].as_array().cloned().unwrap_or_default() {
        let bytes =
            fs::read(blob(layer["digest"].as_str().unwrap_or(""))).map_err(|e| e.to_string())?;
        let tar = gunzip(&bytes)?;
        let mut archive = tar::Archive::new(&tar[..]);
        let mut names = Vec::new();
        for entry in archive.entries().map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            names.push(String::from_utf8_lossy(&entry.path_bytes()).into_owned());
        }
        layers.push(names);
    }
    Ok(layers)
}

/// `docker save`'s layout, made from the OCI blobs: manifest.json, the
/// config as `<hex>.json`, each layer uncompressed as `<hex>/layer.tar`.
fn docker_save_tar(layout: &Path, out: &Path, tags: &[&str]) -> Outcome {
    let blob = |digest: &str| blob_path(layout, digest);
    let manifest = only_manifest(layout)?;
    let config_digest = manifest["config"]["digest"].as_str().unwrap_or("");
    let config = fs::read(blob(config_digest)).map_err(|e| e.to_string())?;
    let mut builder = tar::Builder::new(Vec::new());
    // A file, or with `link` a symlink to one (docker save links a layer
    // it has written already).
    let mut add = |name: &str, bytes: &[u8], link: Option<&str>| -> Outcome {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        if let Some(target) = link {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_link_name(target).map_err(|e| e.to_string())?;
        }
        header.set_cksum();
        builder.append_data(&mut header, name, bytes).map_err(|e| e.to_string())
    };
    let config_name = format!("{}.json", config_digest.trim_start_matches("sha256:"));
    add(&config_name, &config, None)?;
    let (mut layer_names, mut linked_names) = (Vec::new(), Vec::new());
    for layer in manifest["layers"].as_array().cloned().unwrap_or_default() {
        let compressed =
            fs::read(blob(layer["digest"].as_str().unwrap_or(""))).map_err(|e| e.to_string())?;
        let tar = gunzip(&compressed)?;
        let name = format!("{}/layer.tar", &sha256(&tar)[7..]);
        add(&name, &tar, None)?;
        layer_names.push(format!("\"{name}\""));
        let linked = format!("link{}/layer.tar", linked_names.len());
        add(&linked, b"", Some(&format!("../{name}")))?;
        linked_names.push(format!("\"{linked}\""));
    }
    let tags: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
    let entry = |tag: &String, layers: &[String]| {
        format!(
            r#"{{"Config":"{config_name}","RepoTags":[{tag}],"Layers":[{}]}}"#,
            layers.join(",")
        )
    };
    // One image per tag: several, and --ref must pick. The ones after the
    // first name their layers through the symlinks.
    let images: Vec<String> = tags
        .iter()
        .enumerate()
        .map(|(i, t)| entry(t, if i == 0 { &layer_names } else { &linked_names }))
        .collect();
    add("manifest.json", format!("[{}]", images.join(",")).as_bytes(), None)?;
    let bytes = builder.into_inner().map_err(|e| e.to_string())?;
    write(out, &bytes)
}

fn docker_save_and_oci_tar_match() -> Outcome {
    let dir = fresh("docker-save")?;
    let image = umoci_image(&dir)?;
    let from_layout = dir.join("from-layout");
    expect_ok(&unpack(&[], &image, &from_layout)?, "unpack the layout")?;

    let save = dir.join("save.tar");
    docker_save_tar(&image, &save, &["toybox-test:latest", "toybox-test:other"])?;
    // Two images, no --ref: refused, both named.
    let r = unpack(&[], &save, &dir.join("ambiguous"))?;
    expect_one_line_error(&r, "toybox-test:latest, toybox-test:other")?;
    let r = unpack(&["--ref", "toybox-test:nope"], &save, &dir.join("missing"))?;
    expect_one_line_error(&r, "no image \"toybox-test:nope\"")?;
    let from_save = dir.join("from-save");
    expect_ok(&unpack(&["--ref", "toybox-test:other"], &save, &from_save)?, "unpack docker save")?;
    expect_same_tree(&from_layout, 0, &from_save, 0)?;

    // The layout as a tar (`oci-archive:`, skopeo's and podman's).
    let archive = dir.join("oci.tar");
    let r = run(Command::new("tar").arg("-C").arg(&image).arg("-cf").arg(&archive).arg("."))?;
    expect(r.code == Some(0), || format!("tar -c: {}", r.describe()))?;
    let from_archive = dir.join("from-archive");
    expect_ok(&unpack(&["--ref", "test"], &archive, &from_archive)?, "unpack oci-archive")?;
    expect_same_tree(&from_layout, 0, &from_archive, 0)
}

// ---------------------------------------------------------------------------
// Hostile layers.
// ---------------------------------------------------------------------------

/// A directory with a canary file and nothing else; DEST goes beside it.
struct Pen {
    dir: PathBuf,
    dest: PathBuf,
    canary: PathBuf,
}

fn pen(name: &str) -> Result<Pen, String> {
    let dir = fresh(&format!("hostile/{name}"))?;
    let canary = dir.join("canary");
    write(&canary, b"untouched\n")?;
    Ok(Pen { dest: dir.join("dest"), canary, dir })
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// After a refused unpack: the canary as it was, nothing new beside it, no DEST.
fn expect_untouched(pen: &Pen, source_name: &str) -> Outcome {
    let canary = fs::read(&pen.canary).map_err(|e| e.to_string())?;
    expect(canary == b"untouched\n", || format!("the canary changed: {canary:?}"))?;
    let mut want = vec!["canary".to_string(), source_name.to_string()];
    want.sort();
    let names = listing(&pen.dir);
    expect(names == want, || format!("beside DEST: {names:?}, want {want:?}"))
}

/// A one-layer (or more) OCI image of `layers` in the pen, unpacked.
fn unpack_layers(pen: &Pen, layers: &[Vec<u8>], gz: bool) -> Result<Run, String> {
    let image = pen.dir.join("image");
    oci_layout(&image, layers, gz, "{}")?;
    unpack(&[], &image, &pen.dest)
}

fn refused(name: &str, layers: &[Vec<u8>], needle: &str) -> Outcome {
    let pen = pen(name)?;
    let r = unpack_layers(&pen, layers, true)?;
    expect_one_line_error(&r, needle).map_err(|e| format!("{name}: {e}"))?;
    expect_untouched(&pen, "image").map_err(|e| format!("{name}: {e}"))
}

fn hostile_names_refused() -> Outcome {
    let dotdot = Tar::default().file("../canary", b"owned\n").finish();
    refused("dotdot", &[dotdot], "../canary: the path leaves the image")?;
    let deeper = Tar::default().dir("a").file("a/../../canary", b"owned\n").finish();
    refused("dotdot-deeper", &[deeper], "the path leaves the image")?;
    let absolute = Tar::default().file("/etc/toybox-unpack-absolute", b"owned\n").finish();
    refused("absolute", &[absolute], "an absolute path")?;
    let link_out = Tar::default().hardlink("stolen", "../canary").finish();
    refused("hardlink-dotdot", &[link_out], "the path leaves the image")?;
    let link_abs = Tar::default().hardlink("stolen", "/etc/passwd").finish();
    refused("hardlink-absolute", &[link_abs], "an absolute path")?;
    let whiteout = Tar::default().file("../.wh.canary", b"").finish();
    refused("whiteout-dotdot", &[whiteout], "the path leaves the image")?;
    // A plain filesystem tar gets the same checks.
    let pen = pen("plain-dotdot")?;
    let source = pen.dir.join("fs.tar");
    write(&source, &Tar::default().file("../canary", b"owned\n").finish())?;
    let r = unpack(&[], &source, &pen.dest)?;
    expect_one_line_error(&r, "the path leaves the image")?;
    expect_untouched(&pen, "fs.tar")
}

/// Symlinks resolve inside the tree, as the container will see them: a
/// write through a link to `..` or to the canary's absolute path lands in
/// DEST, or is refused when the target is not in the image.
fn hostile_symlinks_stay_inside() -> Outcome {
    // A link to the canary's directory, which the image does not have.
    let pen = pen("symlink-dangling")?;
    let outside = pen.dir.display().to_string();
    let layer = Tar::default().symlink("abs", &outside).file("abs/canary", b"owned\n").finish();
    let r = unpack_layers(&pen, &[layer], true)?;
    expect_one_line_error(&r, "abs: a symlink to nothing in the image")?;
    expect_untouched(&pen, "image")?;

    let pen = pen_named("symlinks")?;
    write(&pen.dir.join("victim"), b"untouched\n")?;
    let outside = pen.dir.display().to_string();
    let inside = pen.dest.join(outside.trim_start_matches('/'));
    // Same layer: `up -> ..` (DEST's parent, were it followed on the host)
    // and a link to the pen's absolute path, then writes through both.
    let first = Tar::default()
        .symlink("up", "..")
        .file("up/canary", b"owned\n")
        .file("up/victim", b"owned\n")
        .file(&format!("{}/placeholder", outside.trim_start_matches('/')), b"")
        .symlink("abs", &outside)
        .file("abs/canary", b"owned\n")
        .finish();
    // A later layer: a write, a hard link and a whiteout through them.
    let second = Tar::default()
        .file("abs/second", b"owned\n")
        .hardlink("stolen", "abs/canary")
        .file("up/.wh.victim", b"")
        .finish();
    let r = unpack_layers(&pen, &[first, second], true)?;
    expect_ok(&r, "unpack")?;
    for name in ["canary", "victim"] {
        let bytes = fs::read(pen.dir.join(name)).map_err(|e| e.to_string())?;
        expect(bytes == b"untouched\n", || format!("{name} beside DEST changed: {bytes:?}"))?;
    }
    let names = listing(&pen.dir);
    expect(names == ["canary", "dest", "image", "victim"], || format!("beside DEST: {names:?}"))?;
    let landed = |p: &Path| fs::read(p).unwrap_or_default() == b"owned\n";
    expect(landed(&pen.dest.join("canary")), || "up/canary did not land in DEST".into())?;
    expect(landed(&inside.join("canary")), || "abs/canary did not land in DEST".into())?;
    expect(landed(&inside.join("second")), || "layer 2's abs/second did not land in DEST".into())?;
    expect(!pen.dest.join("victim").exists(), || "up/.wh.victim did not remove /victim".into())?;
    let stolen = fs::symlink_metadata(pen.dest.join("stolen")).map_err(|e| e.to_string())?;
    expect(stolen.nlink() == 2, || format!("stolen has {} links, want 2", stolen.nlink()))?;

    // A symlink as the last component is replaced, never written through.
    let pen2 = pen_named("symlink-last")?;
    let target = pen2.canary.display().to_string();
    let first = Tar::default().symlink("victim", &target).finish();
    let second = Tar::default().file("victim", b"owned\n").finish();
    let r = unpack_layers(&pen2, &[first, second], false)?;
    expect_ok(&r, "unpack")?;
    let canary = fs::read(&pen2.canary).map_err(|e| e.to_string())?;
    expect(canary == b"untouched\n", || "the file was written through the symlink".into())?;
    let victim = fs::symlink_metadata(pen2.dest.join("victim")).map_err(|e| e.to_string())?;
    expect(victim.is_file(), || "victim is not a file".into())
}

fn pen_named(name: &str) -> Result<Pen, String> {
    pen(name)
}

fn hostile_streams_refused() -> Outcome {
    let looped = Tar::default().symlink("a", "b").symlink("b", "a").file("a/x", b"x").finish();
    refused("symlink-loop", &[looped], "open a: Too many symbolic links")?;

    // A header claiming 8 GiB with a few bytes behind it.
    let mut huge = Tar::default();
    huge.header(b"huge", b'0', 0o77777777777, b"", 0o644, 0);
    huge.data(b"a few bytes");
    refused("huge-size", &[huge.0.clone()], "truncated")?;

    // A gzip layer cut in half: its digest would tell too, but the stream
    // ends first.
    let pen = pen("truncated-gzip")?;
    let image = pen.dir.join("image");
    let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let layer = Tar::default().file("big", &big).finish();
    oci_layout(&image, std::slice::from_ref(&layer), true, "{}")?;
    let blob = image.join("blobs/sha256").join(&sha256(&gzip(&layer))[7..]);
    let bytes = fs::read(&blob).map_err(|e| e.to_string())?;
    write(&blob, &bytes[..bytes.len() / 2])?;
    let r = unpack(&[], &image, &pen.dest)?;
    expect_one_line_error(&r, "layer 1 (sha256:")?;
    expect_untouched(&pen, "image")?;

    // A plain tar cut at an entry's end has no end-of-archive block.
    let pen = pen_named("truncated-tar")?;
    let source = pen.dir.join("fs.tar");
    let whole = Tar::default().file("a", b"a").file("b", b"b").finish();
    write(&source, &whole[..whole.len() - 1024])?;
    let r = unpack(&[], &source, &pen.dest)?;
    expect_one_line_error(&r, "truncated")?;
    expect_untouched(&pen, "fs.tar")?;

    // A pax header larger than toybox reads into memory.
    let mut big_pax = Tar::default();
    big_pax.header(b"PaxHeaders/x", b'x', 4 << 20, b"", 0o644, 0);
    big_pax.data(&vec![b'9'; 4 << 20]);
    let big_pax = big_pax.file("x", b"x").finish();
    refused("big-pax", &[big_pax], "extension header")
}

fn digest_mismatch_refused() -> Outcome {
    // A layer whose bytes are not the ones its descriptor names.
    let pen = pen("wrong-digest")?;
    let image = pen.dir.join("image");
    let good = Tar::default().file("a", b"good\n").finish();
    let second = Tar::default().file("b", b"good\n").finish();
    oci_layout(&image, &[good, second.clone()], false, "{}")?;
    let blob = image.join("blobs/sha256").join(&sha256(&second)[7..]);
    let evil = Tar::default().file("b", b"evil\n").finish();
    write(&blob, &evil)?;
    let r = unpack(&[], &image, &pen.dest)?;
    let want = format!("layer 2 ({}): digest mismatch", sha256(&second));
    expect_one_line_error(&r, &want)?;
    expect_untouched(&pen, "image")?;

    // A diff_id that is not the layer's uncompressed digest.
    let pen = pen_named("wrong-diff-id")?;
    let image = pen.dir.join("image");
    oci_layout(&image, &[Tar::default().file("a", b"a").finish()], true, "{}")?;
    // The config names another diff_id; the manifest and index follow it.
    let other = Tar::default().file("a", b"b").finish();
    let layer = gzip(&Tar::default().file("a", b"a").finish());
    fs::remove_dir_all(&image).map_err(|e| e.to_string())?;
    oci_layout_with_diff_id(&image, &layer, &sha256(&other))?;
    let r = unpack(&[], &image, &pen.dest)?;
    expect_one_line_error(&r, "digest mismatch (uncompressed")?;
    expect_untouched(&pen, "image")?;

    // A blob in an image directory that is a symlink out of it: not read.
    let pen = pen_named("blob-symlink")?;
    let image = pen.dir.join("image");
    let layer = Tar::default().file("a", b"a").finish();
    oci_layout(&image, std::slice::from_ref(&layer), false, "{}")?;
    let blob = image.join("blobs/sha256").join(&sha256(&layer)[7..]);
    fs::remove_file(&blob).map_err(|e| e.to_string())?;
    std::os::unix::fs::symlink(&pen.canary, &blob).map_err(|e| e.to_string())?;
    let r = unpack(&[], &image, &pen.dest)?;
    expect_one_line_error(&r, "a symlink out of the image directory")?;
    expect_untouched(&pen, "image")?;

    // A manifest whose bytes are not its digest.
    let pen = pen_named("wrong-manifest")?;
    let image = pen.dir.join("image");
    oci_layout(&image, &[Tar::default().file("a", b"a").finish()], true, "{}")?;
    let index = fs::read_to_string(image.join("index.json")).map_err(|e| e.to_string())?;
    let digest = index.split("\"digest\":\"sha256:").nth(1).unwrap_or("").get(..64).unwrap_or("");
    let manifest = image.join("blobs/sha256").join(digest);
    let text = fs::read_to_string(&manifest).map_err(|e| e.to_string())?;
    write(&manifest, text.replace("schemaVersion\":2", "schemaVersion\": 2").as_bytes())?;
    let r = unpack(&[], &image, &pen.dest)?;
    expect_one_line_error(&r, "manifest (sha256:")?;
    expect_untouched(&pen, "image")
}

fn oci_layout_with_diff_id(dir: &Path, layer: &[u8], diff_id: &str) -> Outcome {
    let blob = |bytes: &[u8]| -> Result<String, String> {
        let digest = sha256(bytes);
        write(&dir.join("blobs/sha256").join(&digest[7..]), bytes)?;
        Ok(digest)
    };
    let layer_digest = blob(layer)?;
    let config = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#);
    let config_digest = blob(config.as_bytes())?;
    let manifest = format!(
        r#"{{"schemaVersion":2,"config":{{"digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let manifest_digest = blob(manifest.as_bytes())?;
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"digest":"{manifest_digest}","size":{}}}]}}"#,
        manifest.len()
    );
    write(&dir.join("index.json"), index.as_bytes())?;
    write(&dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
}

// ---------------------------------------------------------------------------
// What a layer says, kept.
// ---------------------------------------------------------------------------

fn getxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let name = CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the length passed.
    let n = unsafe {
        libc::lgetxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

fn layer_semantics() -> Outcome {
    let pen = pen("semantics")?;
    // v2 file capability: CAP_NET_BIND_SERVICE (10) permitted and effective.
    let mut cap = Vec::new();
    cap.extend_from_slice(&0x0200_0001u32.to_le_bytes());
    cap.extend_from_slice(&(1u32 << 10).to_le_bytes());
    cap.extend_from_slice(&[0; 12]);
    let first = Tar::default()
        .dir("d")
        .file("d/a", b"a")
        .file("d/b", b"b")
        .file("gone", b"x")
        .file_as("setuid", b"#!/bin/sh\n", 0o4755, 0)
        .file_as("owned-by-1000", b"x", 0o644, 1000)
        .file_as("owned-by-5000", b"x", 0o644, 5000)
        .pax(&[("SCHILY.xattr.security.capability", &cap), ("SCHILY.xattr.user.note", b"kept")])
        .file("capable", b"x")
        .hardlink("d/a-link", "d/a")
        .device("null", 1, 3)
        .finish();
    // Opaque d/: only what this layer puts there stays, whichever comes first.
    let second = Tar::default()
        .dir("d")
        .file("d/c", b"c")
        .file("d/.wh..wh..opq", b"")
        .file(".wh.gone", b"")
        .finish();
    let r = unpack_layers(&pen, &[first.clone(), second.clone()], true)?;
    expect_ok(&r, "unpack")?;
    let d = listing(&pen.dest.join("d"));
    expect(d == ["c"], || format!("d/ after the opaque whiteout: {d:?}, want [c]"))?;
    expect(!pen.dest.join("gone").exists(), || "gone survived .wh.gone".into())?;
    let meta = |p: &str| fs::symlink_metadata(pen.dest.join(p)).map_err(|e| format!("{p}: {e}"));
    expect(meta("setuid")?.mode() & 0o7777 == 0o4755, || "setuid bit lost".into())?;
    expect(meta("owned-by-1000")?.uid() == 11000, || "uid 1000 is not host 11000".into())?;
    expect(meta("owned-by-5000")?.uid() == 65534, || "uid 5000 is not host 65534".into())?;
    expect(r.stderr.contains("warning: 2 owners outside 0..2000"), || {
        format!("no warning for the unmapped owner (uid and gid)\n{}", r.describe())
    })?;
    expect(meta("d")?.uid() == 10000 && meta(".")?.uid() == 10000, || {
        "dirs not host 10000".into()
    })?;
    let null = meta("null")?;
    expect(null.file_type().is_char_device() && null.rdev() == libc::makedev(1, 3), || {
        format!("null is not the char device 1:3: rdev {:x}", null.rdev())
    })?;
    // The v2 capability came out v3, for the shifted root.
    let written = getxattr(&pen.dest.join("capable"), "security.capability").unwrap_or_default();
    let rootid = written.get(20..24).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    expect(written.len() == 24 && written[3] == 3 && rootid == Some(10000), || {
        format!("security.capability {written:?}: want v3 with rootid 10000")
    })?;
    let note = getxattr(&pen.dest.join("capable"), "user.note");
    expect(note.as_deref() == Some(b"kept".as_slice()), || format!("user.note {note:?}"))?;
    // --no-shift keeps the ids as the tar has them.
    let pen = pen_named("semantics-no-shift")?;
    let image = pen.dir.join("image");
    oci_layout(&image, &[first, second], true, "{}")?;
    let r = unpack(&["--no-shift"], &image, &pen.dest)?;
    expect_ok(&r, "unpack --no-shift")?;
    let m = fs::symlink_metadata(pen.dest.join("owned-by-5000")).map_err(|e| e.to_string())?;
    expect(m.uid() == 5000, || format!("--no-shift: uid {}", m.uid()))
}

/// Not root: no owners set (they stay the caller's) and no device nodes,
/// with a warning; everything else as root would have it. In a directory
/// of /tmp with a copy of toybox: uid 65534 may not reach the checkout
/// (a clone under /root is 0700).
fn unprivileged_unpack() -> Outcome {
    let dir = PathBuf::from(format!("/tmp/toybox-unpack-test-{}", std::process::id()));
    let result = unprivileged_in(&dir);
    let _ = fs::remove_dir_all(&dir);
    result
}

fn unprivileged_in(dir: &Path) -> Outcome {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let toybox = dir.join("toybox");
    fs::copy(TOYBOX, &toybox).map_err(|e| format!("cp toybox: {e}"))?;
    let source = dir.join("fs.tar");
    let layer = Tar::default().file_as("owned", b"x", 0o4755, 1000).device("null", 1, 3).finish();
    write(&source, &layer)?;
    for path in [dir, &source] {
        let open = fs::Permissions::from_mode_ext(0o777);
        fs::set_permissions(path, open).map_err(|e| e.to_string())?;
    }
    let dest = dir.join("dest");
    let r = run(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&toybox)
        .arg("unpack")
        .arg(&source)
        .arg(&dest))?;
    expect_ok(&r, "unpack as uid 65534")?;
    expect(r.stderr.contains("warning: 1 device nodes skipped"), || r.describe())?;
    let owned = fs::symlink_metadata(dest.join("owned")).map_err(|e| e.to_string())?;
    expect(owned.uid() == 65534 && owned.mode() & 0o7777 == 0o4755, || {
        format!("owned: uid {} mode {:o}", owned.uid(), owned.mode() & 0o7777)
    })?;
    expect(!dest.join("null").exists(), || "a device node made without root".into())
}

/// zstd layers: two frames with a skippable frame between them (zstd's
/// own concatenation, as zstd:chunked writes), applied like gzip ones.
fn zstd_layers() -> Outcome {
    use ruzstd::encoding::{CompressionLevel, compress_to_vec};
    let pen = pen("zstd")?;
    let big: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let tar = Tar::default().file("a", b"one\n").file("big", &big).dir("d").finish();
    let (front, back) = tar.split_at(tar.len() / 2);
    let mut blob = compress_to_vec(front, CompressionLevel::Fastest);
    blob.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
    blob.extend_from_slice(&4u32.to_le_bytes());
    blob.extend_from_slice(b"skip");
    blob.extend_from_slice(&compress_to_vec(back, CompressionLevel::Fastest));
    let second = Tar::default().file("d/.wh..wh..opq", b"").file(".wh.a", b"").finish();
    let second_blob = compress_to_vec(&second[..], CompressionLevel::Fastest);
    let image = pen.dir.join("image");
    oci_layout_of_blobs(&image, &[(blob.clone(), tar.clone()), (second_blob, second)], "{}")?;
    expect_ok(&unpack(&[], &image, &pen.dest)?, "unpack zstd layers")?;
    let got = fs::read(pen.dest.join("big")).map_err(|e| e.to_string())?;
    expect(got == big, || "big came out different".into())?;
    expect(!pen.dest.join("a").exists(), || "a survived its whiteout in a zstd layer".into())?;

    // A zstd filesystem tar (`tar --zstd -c`): one layer, like a gzip one.
    let pen = pen_named("zstd-plain")?;
    let source = pen.dir.join("fs.tar.zst");
    write(&source, &blob)?;
    expect_ok(&unpack(&[], &source, &pen.dest)?, "unpack a zstd filesystem tar")?;
    let got = fs::read(pen.dest.join("big")).map_err(|e| e.to_string())?;
    expect(got == big, || "big from the zstd tar came out different".into())?;

    // Cut short: one error line, nothing left.
    let pen = pen_named("zstd-truncated")?;
    let image = pen.dir.join("image");
    let cut = blob[..blob.len() - 100].to_vec();
    oci_layout_of_blobs(&image, &[(cut, tar)], "{}")?;
    let r = unpack(&[], &image, &pen.dest)?;
    expect_one_line_error(&r, "layer 1 (sha256:")?;
    expect_untouched(&pen, "image")
}

fn dest_rules() -> Outcome {
    // DEST not empty: refused, untouched.
    let pen = pen("dest-not-empty")?;
    write(&pen.dest.join("keep"), b"keep")?;
    let image = pen.dir.join("image");
    oci_layout(&image, &[Tar::default().file("a", b"a").finish()], true, "{}")?;
    let r = unpack(&[], &image, &pen.dest)?;
    expect_one_line_error(&r, "exists and is not empty")?;
    expect(listing(&pen.dest) == ["keep"], || "DEST changed".into())?;
    // An empty DEST is fine.
    fs::remove_file(pen.dest.join("keep")).map_err(|e| e.to_string())?;
    expect_ok(&unpack(&[], &image, &pen.dest)?, "unpack into an empty DEST")?;
    expect(listing(&pen.dest) == ["a"], || "DEST is not the image".into())?;
    // A killed run's temporary directory goes, once its pid is gone.
    let pen = pen_named("stale-temp")?;
    let mut child = Command::new("true").spawn().map_err(|e| e.to_string())?;
    let dead = child.id();
    child.wait().map_err(|e| e.to_string())?;
    let stale = pen.dir.join(format!(".dest.unpack-{dead}"));
    write(&stale.join("half"), b"half")?;
    let live = pen.dir.join(format!(".dest.unpack-{}", std::process::id()));
    write(&live.join("busy"), b"busy")?;
    let image = pen.dir.join("image");
    oci_layout(&image, &[Tar::default().file("a", b"a").finish()], true, "{}")?;
    expect_ok(&unpack(&[], &image, &pen.dest)?, "unpack")?;
    expect(!stale.exists(), || format!("{} is still there", stale.display()))?;
    expect(live.exists(), || "a live run's temporary directory was removed".into())?;
    fs::remove_dir_all(&live).map_err(|e| e.to_string())
}

/// toybox's peak RSS unpacking a 64 MiB file and a 256 MiB one: the same.
/// (ru_maxrss of a child spawned with vfork includes this harness's own
/// peak, so the bound is loose; a layer held in memory would show 256 MiB.)
fn memory_does_not_grow() -> Outcome {
    let dir = fresh("memory")?;
    let mut peaks = Vec::new();
    for mib in [64usize, 256] {
        // Zeros compress ~1000:1, so the layer is small and the file big.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut t = Tar::default();
        t.header(b"big", b'0', (mib << 20) as u64, b"", 0o644, 0);
        let _ = gz.write_all(&t.0);
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..mib {
            let _ = gz.write_all(&zeros);
        }
        let _ = gz.write_all(&[0; 1024]);
        let source = dir.join(format!("{mib}.tar.gz"));
        write(&source, &gz.finish().map_err(|e| e.to_string())?)?;
        let dest = dir.join(format!("dest-{mib}"));
        let started = Instant::now();
        let child = Command::new(TOYBOX)
            .arg("unpack")
            .arg(&source)
            .arg(&dest)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut status = 0;
        // SAFETY: a zeroed rusage is valid; wait4 fills it in.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: our own child's pid.
        let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
        expect(pid > 0 && status == 0, || format!("unpack of {mib} MiB: status {status}"))?;
        println!(
            "     {mib} MiB file: peak RSS {} KiB, {} ms",
            usage.ru_maxrss,
            started.elapsed().as_millis()
        );
        peaks.push(usage.ru_maxrss);
        fs::remove_dir_all(&dest).map_err(|e| e.to_string())?;
    }
    expect(peaks[1] < peaks[0] + 1024 && peaks[1] < 64 * 1024, || {
        format!("peak RSS {} KiB for 64 MiB, {} KiB for 256 MiB", peaks[0], peaks[1])
    })
}

// ---------------------------------------------------------------------------

type TestFn = fn() -> Outcome;

const TESTS: &[(&str, TestFn)] = &[
    ("umoci_image_matches_umoci_unpack", umoci_image_matches_umoci_unpack),
    ("docker_save_and_oci_tar_match", docker_save_and_oci_tar_match),
    ("hostile_names_refused", hostile_names_refused),
    ("hostile_symlinks_stay_inside", hostile_symlinks_stay_inside),
    ("hostile_streams_refused", hostile_streams_refused),
    ("digest_mismatch_refused", digest_mismatch_refused),
    ("layer_semantics", layer_semantics),
    ("unprivileged_unpack", unprivileged_unpack),
    ("zstd_layers", zstd_layers),
    ("dest_rules", dest_rules),
    ("memory_does_not_grow", memory_does_not_grow),
];

fn skip_reason(name: &str) -> Option<String> {
    let needs_umoci = name.starts_with("umoci") || name.starts_with("docker_save");
    if needs_umoci && Command::new("umoci").arg("--version").output().is_err() {
        return Some("umoci is not installed (apt-get install umoci)".into());
    }
    None
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn main() {
    let selected = harness::selected(TESTS);
    let mut tally = harness::Tally::default();
    // The umoci image is made of the busybox rootfs the container tests use,
    // unshifted: an image holds the ids as the container sees them (0, 1000).
    let rootfs = repo_root().join(IMAGE_ROOTFS);
    let script = repo_root().join("rootfs-scripts/busybox-rootfs.sh");
    if is_root() {
        let setup = run(Command::new(&script).arg("--no-shift").arg(&rootfs));
        if let Err(e) = setup.and_then(|r| expect(r.code == Some(0), || r.describe())) {
            tally.fail("lab setup (busybox-rootfs.sh)", &e);
        }
    }
    for (name, test) in selected {
        let reason = if !is_root() {
            Some("needs root (owners, device nodes, containers)".to_string())
        } else {
            skip_reason(name)
        };
        match reason {
            Some(reason) => tally.skip(name, &reason),
            None => tally.run(name, test),
        }
    }
    tally.finish("unpack");
}
