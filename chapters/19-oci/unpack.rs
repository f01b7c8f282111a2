//! `toybox unpack SOURCE DEST`: an image, or a filesystem tar, becomes a
//! rootfs directory toybox can run.
//!
//! SOURCE is an OCI image layout (a directory, or a tar of one: index.json ->
//! manifest -> config + layers), a `docker save` tar (manifest.json), or a
//! plain filesystem tar (`docker export`, `tar -c`, mmdebstrap), maybe gzip.
//! The layers are applied in order to a temporary sibling of DEST, which
//! becomes DEST by one rename(2) once every layer is in and every digest
//! matched: DEST is never half-made.
//!
//! Layers are untrusted input. Every parent directory is opened with
//! openat2(2) RESOLVE_IN_ROOT from the tree being made, so a `..` or an
//! absolute symlink planted by an earlier entry resolves inside it, as the
//! container will see it; the last component is made by *at() calls that
//! never follow it (O_EXCL|O_NOFOLLOW after removing what was there).
//! Names with `..` or a leading `/` are refused outright.

use std::collections::{HashMap, HashSet};
use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, BufReader, IsTerminal, Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use flate2::read::MultiGzDecoder;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{Mode, SFlag, fchmod, fstatat, futimens, makedev, mkdirat, mknodat};
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};
use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{EXIT_TOYBOX_FAILED, Error, Result, Stage, fail};
use crate::{USERNS_COUNT, USERNS_OFFSET};

const STAGE: &str = "unpack";

/// What the kernel shows for an id outside the user namespace's map
/// (/proc/sys/kernel/overflowuid): `nobody` inside. A file owned by an id
/// the map does not cover reads as this anyway, so that is where it goes.
const OVERFLOW_ID: u32 = 65534;

/// GNU long names, long link names and pax headers are read into memory:
/// a hostile layer must not make that grow with its size.
const MAX_EXTENSION: u64 = 1 << 20;

/// Manifests, configs and indexes are small; a blob claiming more is refused.
const MAX_JSON: u64 = 16 << 20;

fn refuse(what: impl Into<String>) -> Error {
    fail(STAGE, what, EXIT_TOYBOX_FAILED)
}

/// The subcommand: unpack SOURCE into DEST, print how to run it.
pub fn run(source: &Path, dest: &Path, reference: Option<&str>, shift: bool) -> Result<i32> {
    let parent = parent_of(dest)?;
    check_dest(dest)?;
    remove_stale_temps(&parent, dest);
    let temp = TempDir::create(&parent, dest)?;
    let image = open_source(source, reference)?;
    let mut tree = Tree::new(&temp.path, shift)?;
    let count = image.layers.len();
    for (index, layer) in image.layers.iter().enumerate() {
        let label = match &layer.digest {
            Some(digest) => format!("layer {} ({digest})", index + 1),
            None => format!("layer {}", index + 1),
        };
        let meter = Meter::new(index + 1, count, layer.size);
        let blob = image.store.open(&layer.name, &label)?;
        apply_layer(&mut tree, blob, layer, &label, meter)?;
    }
    tree.finish_warnings();
    drop(tree);
    temp.commit(dest)?;
    print_summary(dest, &image);
    Ok(0)
}

// ---------------------------------------------------------------------------
// DEST and its temporary sibling.
// ---------------------------------------------------------------------------

fn parent_of(dest: &Path) -> Result<PathBuf> {
    let name = dest.file_name().filter(|n| *n != "." && *n != "..");
    if name.is_none() {
        return Err(refuse(format!("{}: DEST must name a directory to make", dest.display())));
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(refuse(format!("{}: no such directory", parent.display())));
    }
    Ok(parent)
}

/// DEST must not exist, or be an empty directory (as umoci asks): rename(2)
/// replaces an empty directory and nothing else.
fn check_dest(dest: &Path) -> Result<()> {
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).stage(STAGE, format!("stat {}", dest.display())),
        Ok(meta) if meta.is_dir() => {
            let mut entries =
                fs::read_dir(dest).stage(STAGE, format!("read {}", dest.display()))?;
            match entries.next() {
                None => Ok(()),
                Some(_) => Err(refuse(format!("{}: exists and is not empty", dest.display()))),
            }
        }
        Ok(_) => Err(refuse(format!("{}: exists and is not a directory", dest.display()))),
    }
}

fn temp_prefix(dest: &Path) -> String {
    let name = dest.file_name().unwrap_or(OsStr::new("rootfs"));
    format!(".{}.unpack-", name.to_string_lossy())
}

/// A run killed half-way leaves `.DEST.unpack-PID`; once that pid is gone,
/// the next run removes it.
fn remove_stale_temps(parent: &Path, dest: &Path) {
    let prefix = temp_prefix(dest);
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
        let Ok(pid) = pid.parse::<i32>() else { continue };
        let gone =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) == Err(Errno::ESRCH);
        if pid > 0 && gone {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// The tree being made; removed on any error (Drop) unless committed.
struct TempDir {
    path: PathBuf,
    committed: bool,
}

impl TempDir {
    fn create(parent: &Path, dest: &Path) -> Result<TempDir> {
        let path = parent.join(format!("{}{}", temp_prefix(dest), std::process::id()));
        let _ = fs::remove_dir_all(&path); // our own pid's: a run before pid reuse
        std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o700)
            .create(&path)
            .stage(STAGE, format!("mkdir {}", path.display()))?;
        Ok(TempDir { path, committed: false })
    }

    fn commit(mut self, dest: &Path) -> Result<()> {
        fs::rename(&self.path, dest)
            .stage(STAGE, format!("rename {} to {}", self.path.display(), dest.display()))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.committed {
            // std's remove_dir_all opens each level O_NOFOLLOW: a symlink in
            // the tree is removed, never followed.
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------
// SOURCE: where the blobs are, which image, which layers.
// ---------------------------------------------------------------------------

/// Where the files of SOURCE are: a directory, or regions of a tar file.
enum Store {
    Dir(PathBuf),
    Tar {
        file: File,
        index: HashMap<String, (u64, u64)>,
    },
    /// A filesystem tar, read once from the start: the one layer.
    Plain(PathBuf),
}

struct Layer {
    /// The name in the store: `blobs/sha256/…`, `…/layer.tar`.
    name: String,
    digest: Option<String>,
    diff_id: Option<String>,
    size: Option<u64>,
}

struct Image {
    store: Store,
    layers: Vec<Layer>,
    /// The image config, when SOURCE is an image.
    config: Option<Value>,
    /// Which image, for the summary: its ref name or tag, and its manifest digest.
    name: String,
}

fn open_source(source: &Path, reference: Option<&str>) -> Result<Image> {
    let meta = fs::metadata(source).stage(STAGE, format!("open {}", source.display()))?;
    if meta.is_dir() {
        let store = Store::Dir(source.to_path_buf());
        return open_image(store, source, reference);
    }
    let file = File::open(source).stage(STAGE, format!("open {}", source.display()))?;
    let mut magic = [0u8; 4];
    let n = file.read_at(&mut magic, 0).stage(STAGE, format!("read {}", source.display()))?;
    let compressed =
        magic[..n].starts_with(&[0x1f, 0x8b]) || magic[..n] == [0x28, 0xb5, 0x2f, 0xfd];
    if compressed {
        // Every tool writes image archives uncompressed; a compressed tar is a rootfs.
        return Ok(plain(source));
    }
    // Headers only, seeking over the contents; the full index only for an
    // image, so that a filesystem tar's many names are never all held.
    let markers = |name: &str| name == "index.json" || name == "manifest.json";
    if index_tar(&file, source, markers)?.is_empty() {
        return Ok(plain(source));
    }
    let index = index_tar(&file, source, |_| true)?;
    open_image(Store::Tar { file, index }, source, reference)
}

fn plain(source: &Path) -> Image {
    let layer = Layer { name: String::new(), digest: None, diff_id: None, size: None };
    Image {
        store: Store::Plain(source.to_path_buf()),
        layers: vec![layer],
        config: None,
        name: source.display().to_string(),
    }
}

/// The regular files of a tar that `keep` wants and where their bytes are,
/// read header by header (seeking over the contents); links to them resolved.
fn index_tar(
    file: &File,
    source: &Path,
    keep: impl Fn(&str) -> bool,
) -> Result<HashMap<String, (u64, u64)>> {
    let what = format!("read {}", source.display());
    let mut start = file;
    start.seek(io::SeekFrom::Start(0)).stage(STAGE, &what)?;
    let mut archive = tar::Archive::new(file);
    let mut files = HashMap::new();
    let mut links = Vec::new();
    let entries = archive.entries_with_seek().stage(STAGE, &what)?;
    let mut ext = Extensions::default();
    for entry in entries.raw(true) {
        let mut entry = entry.stage(STAGE, &what)?;
        if ext.take_extension(&mut entry).stage(STAGE, &what)? {
            continue;
        }
        let meta = ext.finish(&entry, false).stage(STAGE, &what)?;
        let name = clean_archive_name(&meta.path);
        if !keep(&name) {
            continue;
        }
        match meta.kind {
            Kind::File => {
                files.insert(name, (entry.raw_file_position(), meta.size));
            }
            Kind::Symlink | Kind::HardLink => links.push((name, meta.link, meta.kind)),
            _ => {}
        }
    }
    // docker save links a layer it wrote already: `b/layer.tar -> ../a/layer.tar`.
    for _ in 0..8 {
        for (name, target, kind) in &links {
            let target = String::from_utf8_lossy(target);
            let resolved = match kind {
                Kind::Symlink => match name.rsplit_once('/') {
                    Some((dir, _)) => clean_archive_name(format!("{dir}/{target}").as_bytes()),
                    None => clean_archive_name(target.as_bytes()),
                },
                _ => clean_archive_name(target.as_bytes()),
            };
            if let Some(&region) = files.get(&resolved) {
                files.entry(name.clone()).or_insert(region);
            }
        }
    }
    Ok(files)
}

/// `./a/../b//c` -> `b/c`, for names inside an image archive (never for
/// paths written to disk: those refuse `..`).
fn clean_archive_name(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    let mut parts: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

impl Store {
    fn has(&self, name: &str) -> bool {
        match self {
            Store::Dir(dir) => {
                open_beneath(dir, name).is_ok_and(|f| f.metadata().is_ok_and(|m| m.is_file()))
            }
            Store::Tar { index, .. } => index.contains_key(name),
            Store::Plain(_) => false,
        }
    }

    /// A blob's bytes as a stream.
    fn open(&self, name: &str, label: &str) -> Result<Box<dyn Read + '_>> {
        match self {
            Store::Plain(path) => {
                let file = File::open(path).stage(STAGE, format!("open {}", path.display()))?;
                Ok(Box::new(file))
            }
            Store::Dir(dir) => {
                let file = match open_beneath(dir, name) {
                    Err(Errno::EXDEV) => {
                        let what = format!("{label}: {name}: a symlink out of the image directory");
                        return Err(refuse(what));
                    }
                    other => other.stage(STAGE, format!("{label}: open {name}"))?,
                };
                Ok(Box::new(file))
            }
            Store::Tar { file, index } => {
                let Some(&(start, length)) = index.get(name) else {
                    return Err(refuse(format!("{label}: {name}: not in the archive")));
                };
                Ok(Box::new(Region { file, at: start, end: start + length }))
            }
        }
    }

    fn read_json(&self, name: &str, digest: Option<&str>, what: &str) -> Result<Value> {
        let mut bytes = Vec::new();
        let reader = self.open(name, what)?;
        reader.take(MAX_JSON + 1).read_to_end(&mut bytes).stage(STAGE, format!("{what}: read"))?;
        if bytes.len() as u64 > MAX_JSON {
            return Err(refuse(format!("{what}: larger than {MAX_JSON} bytes")));
        }
        if let Some(digest) = digest {
            let actual = sha256_name(&Sha256::digest(&bytes));
            if actual != digest {
                return Err(refuse(format!("{what} ({digest}): digest mismatch")));
            }
        }
        serde_json::from_slice(&bytes).map_err(|e| refuse(format!("{what}: {e}")))
    }
}

/// A file of an image directory. The names come from its JSON; a symlink
/// among its blobs must not make toybox read, and briefly unpack, a host
/// file such as /etc/shadow: RESOLVE_BENEATH keeps every step inside `dir`.
fn open_beneath(dir: &Path, name: &str) -> nix::Result<File> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let dir = openat(nix::fcntl::AT_FDCWD, dir, flags, Mode::empty())?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    Ok(File::from(openat2(dir.as_fd(), name, how)?))
}

/// Part of a file, read with pread(2): the blobs of an image archive.
struct Region<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl Read for Region<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = (self.end - self.at).min(buf.len() as u64) as usize;
        if left == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..left], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// `sha256:<64 hex>`, the only digests toybox checks: its blob's path.
fn blob_path(digest: &str, what: &str) -> Result<String> {
    let hex = digest.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(refuse(format!("{what}: unsupported digest {digest:?}")));
    }
    Ok(format!("blobs/sha256/{hex}"))
}

fn open_image(store: Store, source: &Path, reference: Option<&str>) -> Result<Image> {
    // Newer docker writes both layouts; the OCI one carries digests for all.
    if store.has("index.json") {
        return open_oci(store, reference);
    }
    if store.has("manifest.json") {
        return open_docker(store, reference);
    }
    Err(refuse(format!(
        "{}: neither an OCI layout (index.json) nor docker save (manifest.json)",
        source.display()
    )))
}

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

fn open_oci(store: Store, reference: Option<&str>) -> Result<Image> {
    let index = store.read_json("index.json", None, "index.json")?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    let names = |d: &Value| -> Vec<String> {
        [REF_NAME, CONTAINERD_NAME]
            .iter()
            .filter_map(|k| d["annotations"][k].as_str().map(String::from))
            .collect()
    };
    let descriptor = pick(&manifests, reference, names, "index.json")?;
    let mut descriptor = descriptor.clone();
    let name = names(&descriptor).into_iter().next().unwrap_or_default();
    // A multi-platform image: an index of manifests, one per platform.
    for _ in 0..4 {
        let media = descriptor["mediaType"].as_str().unwrap_or("");
        if !media.ends_with("image.index.v1+json") && !media.ends_with("manifest.list.v2+json") {
            break;
        }
        let digest = descriptor["digest"].as_str().unwrap_or("");
        let nested = store.read_json(&blob_path(digest, "index")?, Some(digest), "index")?;
        let list = nested["manifests"].as_array().cloned().unwrap_or_default();
        let found = list
            .iter()
            .find(|d| d["platform"]["os"] == "linux" && d["platform"]["architecture"] == "amd64");
        descriptor =
            found.cloned().ok_or_else(|| refuse("the image has no linux/amd64 manifest"))?;
    }
    let digest = descriptor["digest"].as_str().unwrap_or("").to_string();
    let manifest = store.read_json(&blob_path(&digest, "manifest")?, Some(&digest), "manifest")?;
    let config_digest = manifest["config"]["digest"].as_str().unwrap_or("").to_string();
    let config =
        store.read_json(&blob_path(&config_digest, "config")?, Some(&config_digest), "config")?;
    let diff_ids = diff_ids(&config)?;
    let descriptors = manifest["layers"].as_array().cloned().unwrap_or_default();
    if descriptors.len() != diff_ids.len() {
        let what = format!(
            "the manifest has {} layers, the config {} diff_ids",
            descriptors.len(),
            diff_ids.len()
        );
        return Err(refuse(what));
    }
    let mut layers = Vec::new();
    for (index, (layer, diff_id)) in descriptors.iter().zip(diff_ids).enumerate() {
        let digest = layer["digest"].as_str().unwrap_or("").to_string();
        let name = blob_path(&digest, &format!("layer {}", index + 1))?;
        let size = layer["size"].as_u64();
        layers.push(Layer { name, digest: Some(digest), diff_id: Some(diff_id), size });
    }
    let name = if name.is_empty() { digest } else { format!("{name} ({digest})") };
    Ok(Image { store, layers, config: Some(config), name })
}

fn diff_ids(config: &Value) -> Result<Vec<String>> {
    let list = config["rootfs"]["diff_ids"].as_array();
    let list = list.ok_or_else(|| refuse("config: no rootfs.diff_ids"))?;
    list.iter()
        .map(|d| {
            d.as_str().map(String::from).ok_or_else(|| refuse("config: a diff_id is not a string"))
        })
        .collect()
}

/// One image of several: by --ref, or the only one.
fn pick<'a>(
    all: &'a [Value],
    reference: Option<&str>,
    names: impl Fn(&Value) -> Vec<String>,
    file: &str,
) -> Result<&'a Value> {
    let listed = || {
        let names: Vec<String> = all.iter().flat_map(&names).collect();
        if names.is_empty() { "none has a name".to_string() } else { names.join(", ") }
    };
    match reference {
        Some(wanted) => all
            .iter()
            .find(|d| names(d).iter().any(|n| n == wanted))
            .ok_or_else(|| refuse(format!("no image {wanted:?} in {file}; it has: {}", listed()))),
        None => match all {
            [] => Err(refuse(format!("{file} lists no image"))),
            [one] => Ok(one),
            _ => Err(refuse(format!(
                "{file} holds {} images; pick one with --ref: {}",
                all.len(),
                listed()
            ))),
        },
    }
}

fn open_docker(store: Store, reference: Option<&str>) -> Result<Image> {
    let manifest = store.read_json("manifest.json", None, "manifest.json")?;
    let images = manifest.as_array().cloned().unwrap_or_default();
    let tags = |d: &Value| -> Vec<String> {
        let tags = d["RepoTags"].as_array().cloned().unwrap_or_default();
        tags.iter().filter_map(|t| t.as_str().map(String::from)).collect()
    };
    let image = pick(&images, reference, tags, "manifest.json")?;
    let name = tags(image).into_iter().next().unwrap_or_default();
    let config_name = archive_path(image["Config"].as_str().unwrap_or(""), "config")?;
    // docker save names the config by its digest (`<hex>.json`, or
    // `blobs/sha256/<hex>` since docker 25): check it against that.
    let config_digest = digest_in_name(&config_name);
    let config = store.read_json(&config_name, config_digest.as_deref(), "config")?;
    let diff_ids = diff_ids(&config)?;
    let names = image["Layers"].as_array().cloned().unwrap_or_default();
    if names.len() != diff_ids.len() {
        let what = format!(
            "manifest.json has {} layers, the config {} diff_ids",
            names.len(),
            diff_ids.len()
        );
        return Err(refuse(what));
    }
    let mut layers = Vec::new();
    for (index, (layer, diff_id)) in names.iter().zip(diff_ids).enumerate() {
        let name = archive_path(layer.as_str().unwrap_or(""), &format!("layer {}", index + 1))?;
        let digest = digest_in_name(&name);
        layers.push(Layer { name, digest, diff_id: Some(diff_id), size: None });
    }
    let name = match config_digest {
        Some(d) if name.is_empty() => d,
        _ => name,
    };
    Ok(Image { store, layers, config: Some(config), name })
}

/// A path manifest.json names: inside the archive, no `..`.
fn archive_path(name: &str, what: &str) -> Result<String> {
    if name.is_empty() || name.starts_with('/') || name.split('/').any(|p| p == "..") {
        return Err(refuse(format!(
            "manifest.json: {what} {name:?} is not a path inside the archive"
        )));
    }
    Ok(clean_archive_name(name.as_bytes()))
}

fn digest_in_name(name: &str) -> Option<String> {
    let hex = name.strip_prefix("blobs/sha256/").or_else(|| name.strip_suffix(".json"))?;
    let ok = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| format!("sha256:{hex}"))
}

// ---------------------------------------------------------------------------
// A layer: decompress, hash, walk the tar.
// ---------------------------------------------------------------------------

/// Hashes (and counts) what passes through, for the digest checks.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
    meter: Option<Meter>,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R, meter: Option<Meter>) -> Self {
        Hashing { inner, hash: Sha256::new(), bytes: 0, meter }
    }

    fn digest(self) -> String {
        sha256_name(&self.hash.finalize())
    }
}

/// `sha256:` and the digest in lower-case hex, as descriptors write it.
fn sha256_name(digest: &[u8]) -> String {
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        if let Some(meter) = &mut self.meter {
            meter.show(self.bytes);
        }
        Ok(n)
    }
}

/// Progress on a terminal: `layer 2/5: 31.5 MiB of 120.0 MiB`, to stderr.
struct Meter {
    layer: usize,
    layers: usize,
    total: Option<u64>,
    shown: Instant,
}

impl Meter {
    fn new(layer: usize, layers: usize, total: Option<u64>) -> Option<Meter> {
        io::stderr().is_terminal().then(|| Meter { layer, layers, total, shown: Instant::now() })
    }

    fn show(&mut self, bytes: u64) {
        if self.shown.elapsed().as_millis() < 200 {
            return;
        }
        self.shown = Instant::now();
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let of = self.total.map(|t| format!(" of {:.1} MiB", mib(t))).unwrap_or_default();
        let line = format!(
            "\r\x1b[Kunpack: layer {}/{}: {:.1} MiB{of}",
            self.layer,
            self.layers,
            mib(bytes)
        );
        let _ = io::stderr().write_all(line.as_bytes());
    }

    fn done(&self) {
        let _ = io::stderr().write_all(b"\r\x1b[K");
    }
}

fn apply_layer(
    tree: &mut Tree,
    blob: Box<dyn Read + '_>,
    layer: &Layer,
    label: &str,
    meter: Option<Meter>,
) -> Result<()> {
    let mut compressed = Hashing::new(blob, meter);
    let mut head = [0u8; 4];
    let got = read_full(&mut compressed, &mut head).stage(STAGE, format!("{label}: read"))?;
    let head = &head[..got];
    let prefixed = head.chain(&mut compressed);
    let result = if head.starts_with(&[0x1f, 0x8b]) {
        let gzip = MultiGzDecoder::new(BufReader::with_capacity(1 << 16, prefixed));
        walk_layer(tree, gzip, label)
    } else if head == [0x28, 0xb5, 0x2f, 0xfd] {
        walk_layer(tree, Zstd::new(BufReader::with_capacity(1 << 16, prefixed)), label)
    } else {
        walk_layer(tree, prefixed, label)
    };
    if let Some(meter) = &compressed.meter {
        meter.done();
    }
    let diff_id = result?;
    tree.end_layer(label)?;
    // Bytes after the gzip stream's end (never in a well-made blob) still count.
    io::copy(&mut compressed, &mut io::sink()).stage(STAGE, format!("{label}: read"))?;
    if let Some(size) = layer.size
        && compressed.bytes != size
    {
        let what = format!("{label}: {} bytes, the manifest says {size}", compressed.bytes);
        return Err(refuse(what));
    }
    let digest = compressed.digest();
    if layer.digest.as_ref().is_some_and(|want| *want != digest) {
        return Err(refuse(format!("{label}: digest mismatch")));
    }
    if let Some(want) = &layer.diff_id
        && *want != diff_id
    {
        return Err(refuse(format!("{label}: digest mismatch (uncompressed, diff_id {want})")));
    }
    Ok(())
}

/// A zstd layer (`+zstd`, what `docker buildx --compression zstd` pushes),
/// decoded by the pure-Rust ruzstd: frame after frame, as zstd(1) reads a
/// concatenation, skipping skippable frames (zstd:chunked writes both).
struct Zstd<R> {
    source: R,
    frame: FrameDecoder,
    in_frame: bool,
}

/// zstd -19 uses an 8 MiB window; a frame asking for more than this (from
/// --long or --ultra, or a hostile header) is refused, not allocated.
const MAX_ZSTD_WINDOW: u64 = 32 << 20;

impl<R: io::BufRead> Zstd<R> {
    fn new(source: R) -> Self {
        let mut frame = FrameDecoder::new();
        frame.set_max_window_size(MAX_ZSTD_WINDOW);
        Zstd { source, frame, in_frame: false }
    }
}

impl<R: io::BufRead> Read for Zstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.in_frame {
                while self.frame.can_collect() == 0 && !self.frame.is_finished() {
                    let step = BlockDecodingStrategy::UptoBlocks(1);
                    self.frame.decode_blocks(&mut self.source, step).map_err(zstd_error)?;
                }
                let n = self.frame.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.in_frame = false;
            }
            if self.source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.frame.reset(&mut self.source) {
                Ok(()) => self.in_frame = true,
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let length = u64::from(length);
                    let skipped = io::copy(&mut (&mut self.source).take(length), &mut io::sink())?;
                    if skipped != length {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                Err(e) => return Err(zstd_error(e)),
            }
        }
    }
}

fn zstd_error(e: impl std::fmt::Display) -> io::Error {
    invalid(format!("zstd: {e}"))
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Applies every entry; returns the uncompressed stream's sha256 (diff_id).
fn walk_layer(tree: &mut Tree, reader: impl Read, label: &str) -> Result<String> {
    let tar_error = |e: io::Error| refuse(format!("{label}: {}", describe_tar_error(&e)));
    let mut uncompressed = Hashing::new(reader, None);
    let mut end = 0u64; // where the last entry's contents end
    {
        let mut archive = tar::Archive::new(&mut uncompressed);
        // Raw: the long names and pax headers come to us, so we bound them.
        let entries = archive.entries().map_err(tar_error)?.raw(true);
        let mut ext = Extensions::default();
        for entry in entries {
            let mut entry = entry.map_err(tar_error)?;
            if ext.take_extension(&mut entry).map_err(tar_error)? {
                continue;
            }
            let meta = ext.finish(&entry, true).map_err(tar_error)?;
            end = entry.raw_file_position() + meta.size.div_ceil(512) * 512;
            tree.apply(&meta, &mut entry, label)?;
        }
    }
    // A tar ends with zero blocks; without one, it was cut at an entry's end.
    if uncompressed.bytes < end + 512 {
        return Err(refuse(format!("{label}: truncated tar (no end-of-archive block)")));
    }
    io::copy(&mut uncompressed, &mut io::sink()).map_err(tar_error)?;
    Ok(uncompressed.digest())
}

fn describe_tar_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "truncated".to_string(),
        _ => e.to_string(),
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    File,
    HardLink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
}

/// One entry, with its GNU long names and pax records applied.
struct Meta {
    path: Vec<u8>,
    link: Vec<u8>,
    kind: Kind,
    size: u64,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: (i64, i64),
    device: (u32, u32),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The extension headers read so far for the next entry.
#[derive(Default)]
struct Extensions {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl Extensions {
    /// Reads an extension header (GNU `L`/`K`, pax `x`/`g`): true if it was one.
    fn take_extension<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> io::Result<bool> {
        let kind = entry.header().entry_type();
        let slot = if kind.is_gnu_longname() {
            &mut self.long_name
        } else if kind.is_gnu_longlink() {
            &mut self.long_link
        } else if kind.is_pax_local_extensions() {
            &mut self.pax
        } else if kind.is_pax_global_extensions() {
            // Global defaults (a comment, mostly): not applied, as docker.
            io::copy(entry, &mut io::sink())?;
            return Ok(true);
        } else {
            return Ok(false);
        };
        let size = entry.header().entry_size()?;
        if size > MAX_EXTENSION {
            return Err(invalid(format!("an extension header of {size} bytes")));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        entry.take(size).read_to_end(&mut bytes)?;
        if bytes.len() as u64 != size {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if kind.is_gnu_longname() || kind.is_gnu_longlink() {
            while bytes.last() == Some(&0) {
                bytes.pop();
            }
        }
        *slot = Some(bytes);
        Ok(true)
    }

    /// The entry's metadata; `strict`: owners, mode and mtime must parse
    /// (for a layer; an image archive's own entries are only located).
    fn finish<R: Read>(&mut self, entry: &tar::Entry<R>, strict: bool) -> io::Result<Meta> {
        let header = entry.header();
        let number = |field: io::Result<u64>| if strict { field } else { Ok(field.unwrap_or(0)) };
        let mut meta = Meta {
            path: self.long_name.take().unwrap_or_else(|| header.path_bytes().into_owned()),
            link: self.long_link.take().unwrap_or_else(|| {
                header.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default()
            }),
            kind: match header.entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
                tar::EntryType::Link => Kind::HardLink,
                tar::EntryType::Symlink => Kind::Symlink,
                tar::EntryType::Char => Kind::Char,
                tar::EntryType::Block => Kind::Block,
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Fifo => Kind::Fifo,
                other => {
                    return Err(invalid(format!(
                        "entry type {:?} is not supported",
                        other.as_byte() as char
                    )));
                }
            },
            size: header.entry_size()?,
            mode: number(header.mode().map(u64::from))? as u32 & 0o7777,
            uid: number(header.uid())?,
            gid: number(header.gid())?,
            mtime: (number(header.mtime())? as i64, 0),
            device: (0, 0),
            xattrs: Vec::new(),
        };
        if matches!(meta.kind, Kind::Char | Kind::Block) {
            meta.device =
                (header.device_major()?.unwrap_or(0), header.device_minor()?.unwrap_or(0));
        }
        if let Some(pax) = self.pax.take() {
            for record in tar::PaxExtensions::new(&pax) {
                let record = record?;
                let key = record.key_bytes();
                let value = record.value_bytes();
                let number = || std::str::from_utf8(value).ok().and_then(|v| v.parse::<u64>().ok());
                match key {
                    b"path" => meta.path = value.to_vec(),
                    b"linkpath" => meta.link = value.to_vec(),
                    b"uid" => meta.uid = number().ok_or_else(|| invalid("pax uid"))?,
                    b"gid" => meta.gid = number().ok_or_else(|| invalid("pax gid"))?,
                    b"mtime" => meta.mtime = pax_time(value).ok_or_else(|| invalid("pax mtime"))?,
                    // Raw mode skips by the header's size; a pax size that
                    // differs (a file over 8 GiB) would desynchronise it.
                    b"size" if number() != Some(meta.size) => {
                        return Err(invalid(
                            "a pax size unlike the header's (files over 8 GiB) is not supported",
                        ));
                    }
                    _ => {
                        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                            meta.xattrs.push((name.to_vec(), value.to_vec()));
                        }
                    }
                }
            }
        }
        if matches!(meta.kind, Kind::File) && meta.path.ends_with(b"/") {
            meta.kind = Kind::Dir; // old tars mark directories by the slash
        }
        Ok(meta)
    }
}

/// `1700000000.123456789` -> (seconds, nanoseconds).
fn pax_time(value: &[u8]) -> Option<(i64, i64)> {
    let text = std::str::from_utf8(value).ok()?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nanos = if digits.is_empty() { 0 } else { format!("{digits:0<9}").parse().ok()? };
    Some((secs, nanos))
}

// ---------------------------------------------------------------------------
// The tree: every path resolved inside it.
// ---------------------------------------------------------------------------

/// A path inside the tree: its components, none `.`, `..` or empty.
type Components = Vec<OsString>;

/// Splits an entry's name; refuses one that is absolute or climbs with `..`.
fn components(name: &[u8], label: &str) -> Result<Components> {
    let shown = || String::from_utf8_lossy(name).into_owned();
    if name.starts_with(b"/") {
        return Err(refuse(format!("{label}: {}: an absolute path", shown())));
    }
    let mut parts = Vec::new();
    for part in name.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                return Err(refuse(format!(
                    "{label}: {}: the path leaves the image (..)",
                    shown()
                )));
            }
            p => parts.push(OsStr::from_bytes(p).to_os_string()),
        }
    }
    Ok(parts)
}

fn join(parts: &[OsString]) -> PathBuf {
    if parts.is_empty() {
        return PathBuf::from(".");
    }
    parts.iter().collect()
}

fn shown(parts: &[OsString]) -> String {
    join(parts).display().to_string()
}

struct Tree {
    root: OwnedFd,
    shift: bool,
    /// Owners and device nodes need root, as with tar.
    privileged: bool,
    /// The last parent directory opened, reused by the next entry in it.
    cached: Option<(Components, OwnedFd)>,
    /// Directories of this layer: their mode and mtime are set at its end,
    /// after their contents (which change the mtime) and so that a
    /// read-only directory does not stop its own entries.
    dirs: Vec<(Components, u32, (i64, i64))>,
    /// Paths this layer made, as keyed hashes (8 bytes an entry, not a
    /// path): an opaque whiteout hides only what lower layers made. The
    /// key is random per run, so a layer cannot aim a collision.
    made: HashSet<u64>,
    hasher: RandomState,
    buffer: Vec<u8>,
    unmapped_ids: u64,
    skipped_devices: u64,
    skipped_xattrs: u64,
    dropped_caps: u64,
}

impl Tree {
    fn new(path: &Path, shift: bool) -> Result<Tree> {
        // O_NOFOLLOW: the directory we just made, not a symlink someone
        // put in its place in a shared parent.
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let root = openat(nix::fcntl::AT_FDCWD, path, flags, Mode::empty())
            .stage(STAGE, format!("open {}", path.display()))?;
        let mut tree = Tree {
            root,
            shift,
            privileged: Uid::effective().is_root(),
            cached: None,
            dirs: Vec::new(),
            made: HashSet::new(),
            hasher: RandomState::new(),
            buffer: vec![0; 1 << 17],
            unmapped_ids: 0,
            skipped_devices: 0,
            skipped_xattrs: 0,
            dropped_caps: 0,
        };
        // The container's root owns its /, until the image says otherwise.
        let root = tree.root.try_clone().stage(STAGE, "dup")?;
        tree.chown(root.as_fd(), 0, 0, "/")?;
        fchmod(tree.root.as_fd(), Mode::from_bits_truncate(0o755)).stage(STAGE, "chmod /")?;
        // Everything below rests on openat2 (Linux 5.6), newer than the
        // kernel containers themselves need: say so plainly.
        if let Err(Errno::ENOSYS) = tree.open_dir(&[], OFlag::O_PATH) {
            return Err(refuse("toybox unpack needs openat2(2): Linux 5.6 or newer"));
        }
        Ok(tree)
    }

    /// Host id for an id in the image: shifted by the user namespace's offset.
    fn host_id(&mut self, id: u64) -> u32 {
        if !self.shift {
            return id.min(u32::MAX as u64) as u32;
        }
        if id < USERNS_COUNT as u64 {
            return USERNS_OFFSET + id as u32;
        }
        self.unmapped_ids += 1;
        OVERFLOW_ID
    }

    fn chown(&mut self, fd: BorrowedFd, uid: u64, gid: u64, what: &str) -> Result<()> {
        if !self.privileged {
            return Ok(());
        }
        let (uid, gid) = (self.host_id(uid), self.host_id(gid));
        fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .stage(STAGE, format!("chown {uid}:{gid} {what}"))
    }

    /// Opens a directory inside the tree, following symlinks as the
    /// container would (an absolute target or `..` stops at the tree's root).
    fn open_dir(&self, parts: &[OsString], flags: OFlag) -> nix::Result<OwnedFd> {
        let how = OpenHow::new().flags(flags | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC).resolve(
            ResolveFlag::RESOLVE_IN_ROOT
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
        openat2(self.root.as_fd(), &join(parts), how)
    }

    /// The parent of an entry, made (0755, root's) where it is missing, as
    /// docker does for a tar that lists a file before its directory.
    /// The last one is kept: entries come directory by directory.
    fn parent(&mut self, parts: &[OsString], label: &str) -> Result<OwnedFd> {
        if let Some((cached, fd)) = &self.cached
            && cached.as_slice() == parts
        {
            return fd.try_clone().stage(STAGE, "dup");
        }
        let fd = match self.open_dir(parts, OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => self.make_parents(parts, label)?,
            Err(e) => return Err(e).stage(STAGE, format!("{label}: open {}", shown(parts))),
        };
        let copy = fd.try_clone().stage(STAGE, "dup")?;
        self.cached = Some((parts.to_vec(), fd));
        Ok(copy)
    }

    fn make_parents(&mut self, parts: &[OsString], label: &str) -> Result<OwnedFd> {
        let mut fd = self.open_dir(&[], OFlag::O_PATH).stage(STAGE, "open /")?;
        for at in 1..=parts.len() {
            match self.open_dir(&parts[..at], OFlag::O_PATH) {
                Ok(next) => fd = next,
                Err(Errno::ENOENT) => {
                    let name = &parts[at - 1];
                    let what = format!("{label}: mkdir {}", shown(&parts[..at]));
                    match mkdirat(fd.as_fd(), name.as_os_str(), Mode::from_bits_truncate(0o755)) {
                        // openat2 found nothing, yet the name is there: a
                        // symlink whose target is not in the image.
                        Err(Errno::EEXIST) => {
                            let path = shown(&parts[..at]);
                            return Err(refuse(format!(
                                "{label}: {path}: a symlink to nothing in the image"
                            )));
                        }
                        other => other.stage(STAGE, &what)?,
                    }
                    let flags =
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                    let made = openat(fd.as_fd(), name.as_os_str(), flags, Mode::empty())
                        .stage(STAGE, &what)?;
                    self.chown(made.as_fd(), 0, 0, &shown(&parts[..at]))?;
                    fd = made;
                }
                Err(e) => {
                    return Err(e).stage(STAGE, format!("{label}: open {}", shown(&parts[..at])));
                }
            }
        }
        Ok(fd)
    }

    fn apply<R: Read>(
        &mut self,
        meta: &Meta,
        entry: &mut tar::Entry<R>,
        label: &str,
    ) -> Result<()> {
        let parts = components(&meta.path, label)?;
        let Some((name, dir)) = parts.split_last() else {
            // `./`: the root itself.
            if meta.kind != Kind::Dir {
                return Err(refuse(format!("{label}: the root entry is not a directory")));
            }
            let root = self.root.try_clone().stage(STAGE, "dup")?;
            self.chown(root.as_fd(), meta.uid, meta.gid, "/")?;
            self.set_xattrs(root.as_fd(), meta, "/")?;
            self.dirs.push((Vec::new(), meta.mode, meta.mtime));
            return Ok(());
        };
        let name_bytes = name.as_bytes();
        if let Some(hidden) = name_bytes.strip_prefix(b".wh.") {
            return self.whiteout(dir, hidden, label);
        }
        let what = format!("{label}: {}", shown(&parts));
        let parent = self.parent(dir, label)?;
        let parent = parent.as_fd();
        let existing = fstatat(parent, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW);
        let existing_dir =
            matches!(&existing, Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR);
        // A directory over a directory merges; anything else replaces.
        if existing.is_ok() && !(existing_dir && meta.kind == Kind::Dir) {
            remove(parent, name, &what)?;
            self.cached = None;
        }
        self.made.insert(self.hasher.hash_one(&parts));
        let mode = Mode::from_bits_truncate(meta.mode);
        match meta.kind {
            Kind::Dir => {
                if !existing_dir {
                    mkdirat(parent, name.as_os_str(), Mode::from_bits_truncate(0o700))
                        .stage(STAGE, format!("{what}: mkdir"))?;
                }
                let flags =
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let fd =
                    openat(parent, name.as_os_str(), flags, Mode::empty()).stage(STAGE, &what)?;
                self.chown(fd.as_fd(), meta.uid, meta.gid, &what)?;
                self.set_xattrs(fd.as_fd(), meta, &what)?;
                self.dirs.push((parts, meta.mode, meta.mtime));
            }
            Kind::File => {
                let flags = OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC;
                let fd = openat(parent, name.as_os_str(), flags, Mode::from_bits_truncate(0o600))
                    .stage(STAGE, &what)?;
                let mut file = File::from(fd);
                let mut written = 0u64;
                loop {
                    let n = entry
                        .read(&mut self.buffer)
                        .map_err(|e| refuse(format!("{what}: {}", describe_tar_error(&e))))?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&self.buffer[..n]).stage(STAGE, format!("{what}: write"))?;
                    written += n as u64;
                }
                if written != meta.size {
                    return Err(refuse(format!(
                        "{label}: truncated ({what}: {written} of {} bytes)",
                        meta.size
                    )));
                }
                // chown before chmod: chown(2) clears setuid and setgid.
                self.chown(file.as_fd(), meta.uid, meta.gid, &what)?;
                fchmod(file.as_fd(), mode).stage(STAGE, format!("{what}: chmod"))?;
                self.set_xattrs(file.as_fd(), meta, &what)?;
                futimens(file.as_fd(), &time(meta.mtime), &time(meta.mtime))
                    .stage(STAGE, format!("{what}: set mtime"))?;
            }
            Kind::Symlink => {
                // The target is stored as it is: whoever follows it later
                // (this tree's openat2, the container) resolves it in here.
                let target = OsStr::from_bytes(&meta.link);
                symlinkat(target, parent, name.as_os_str())
                    .stage(STAGE, format!("{what}: symlink"))?;
                self.cached = None;
                if self.privileged {
                    let (uid, gid) = (self.host_id(meta.uid), self.host_id(meta.gid));
                    fchownat(
                        parent,
                        name.as_os_str(),
                        Some(Uid::from_raw(uid)),
                        Some(Gid::from_raw(gid)),
                        AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .stage(STAGE, format!("{what}: chown"))?;
                }
                let t = time(meta.mtime);
                utimensat(parent, name.as_os_str(), &t, &t, UtimensatFlags::NoFollowSymlink)
                    .stage(STAGE, format!("{what}: set mtime"))?;
            }
            Kind::HardLink => {
                let target = components(&meta.link, label)?;
                let Some((target_name, target_dir)) = target.split_last() else {
                    return Err(refuse(format!("{what}: a hard link to the root")));
                };
                let target_parent = self
                    .open_dir(target_dir, OFlag::O_PATH)
                    .stage(STAGE, format!("{what}: link target {}", shown(&target)))?;
                // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
                linkat(
                    target_parent.as_fd(),
                    target_name.as_os_str(),
                    parent,
                    name.as_os_str(),
                    AtFlags::empty(),
                )
                .stage(STAGE, format!("{what}: link to {}", shown(&target)))?;
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                let kind = match meta.kind {
                    Kind::Char => SFlag::S_IFCHR,
                    Kind::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                if kind != SFlag::S_IFIFO && !self.privileged {
                    self.skipped_devices += 1; // mknod(2) needs CAP_MKNOD
                    return Ok(());
                }
                let dev = makedev(meta.device.0 as u64, meta.device.1 as u64);
                mknodat(parent, name.as_os_str(), kind, mode, dev)
                    .stage(STAGE, format!("{what}: mknod"))?;
                let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let fd =
                    openat(parent, name.as_os_str(), flags, Mode::empty()).stage(STAGE, &what)?;
                if self.privileged {
                    let (uid, gid) = (self.host_id(meta.uid), self.host_id(meta.gid));
                    fchownat(
                        fd.as_fd(),
                        "",
                        Some(Uid::from_raw(uid)),
                        Some(Gid::from_raw(gid)),
                        AtFlags::AT_EMPTY_PATH,
                    )
                    .stage(STAGE, format!("{what}: chown"))?;
                }
                nix::sys::stat::fchmodat(
                    parent,
                    name.as_os_str(),
                    mode,
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
                .stage(STAGE, format!("{what}: chmod"))?;
                let t = time(meta.mtime);
                utimensat(parent, name.as_os_str(), &t, &t, UtimensatFlags::NoFollowSymlink)
                    .stage(STAGE, format!("{what}: set mtime"))?;
            }
        }
        Ok(())
    }

    /// `.wh.NAME` removes NAME of a lower layer; `.wh..wh..opq` empties its
    /// directory of what lower layers put there (OCI image spec, layer.md).
    fn whiteout(&mut self, dir: &[OsString], hidden: &[u8], label: &str) -> Result<()> {
        let what = format!("{label}: whiteout in {}", shown(dir));
        let parent = match self.open_dir(dir, OFlag::O_RDONLY) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(()), // nothing there to hide
            Err(e) => return Err(e).stage(STAGE, &what),
        };
        self.cached = None;
        if hidden == b".wh..opq" {
            let mut listing = nix::dir::Dir::from_fd(parent.try_clone().stage(STAGE, &what)?)
                .stage(STAGE, &what)?;
            let mut names = Vec::new();
            for entry in listing.iter() {
                let entry = entry.stage(STAGE, &what)?;
                let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_os_string();
                if name == "." || name == ".." {
                    continue;
                }
                let mut path = dir.to_vec();
                path.push(name.clone());
                if !self.made.contains(&self.hasher.hash_one(&path)) {
                    names.push(name);
                }
            }
            for name in names {
                remove(parent.as_fd(), &name, &what)?;
            }
            return Ok(());
        }
        if hidden.is_empty() || hidden == b"." || hidden.starts_with(b".wh.") {
            // `.wh..wh.*` other than the opaque marker: aufs bookkeeping, no file.
            return Ok(());
        }
        let name = OsStr::from_bytes(hidden);
        match fstatat(parent.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(Errno::ENOENT) => Ok(()),
            _ => remove(parent.as_fd(), name, &what),
        }
    }

    fn set_xattrs(&mut self, fd: BorrowedFd, meta: &Meta, what: &str) -> Result<()> {
        for (name, value) in &meta.xattrs {
            let mut value = value.clone();
            if name == b"security.capability" && self.shift {
                match self.shift_capability(&value) {
                    Some(shifted) => value = shifted,
                    None => {
                        self.dropped_caps += 1;
                        continue;
                    }
                }
            }
            let Ok(cname) = CString::new(name.clone()) else { continue };
            // SAFETY: valid fd, NUL-terminated name, value pointer and length from one Vec.
            let rc = unsafe {
                libc::fsetxattr(
                    fd.as_raw_fd(),
                    cname.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            };
            if rc != 0 {
                let errno = Errno::last();
                // The filesystem or our privileges do not take it: warn once, at the end.
                if matches!(errno, Errno::ENOTSUP | Errno::EPERM | Errno::EACCES | Errno::EINVAL) {
                    self.skipped_xattrs += 1;
                    continue;
                }
                return Err(errno)
                    .stage(STAGE, format!("{what}: setxattr {}", String::from_utf8_lossy(name)));
            }
        }
        Ok(())
    }

    /// File capabilities in an image are meant for the container's root. A
    /// v2 `security.capability` has no owner and host root would honour it;
    /// v3 (Linux 4.14) names the root it is for: the shifted root, which is
    /// root only in toybox's user namespace. None: drop it (v1, malformed,
    /// or a root outside the map).
    fn shift_capability(&mut self, value: &[u8]) -> Option<Vec<u8>> {
        const REVISION_MASK: u32 = 0xff00_0000;
        const V2: u32 = 0x0200_0000;
        const V3: u32 = 0x0300_0000;
        let word =
            |at: usize| value.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let magic = word(0)?;
        let rootid = match (magic & REVISION_MASK, value.len()) {
            (V2, 20) => 0,
            (V3, 24) => word(20)?,
            _ => return None,
        };
        let host_root = self.host_id(rootid as u64);
        if host_root == OVERFLOW_ID {
            return None;
        }
        let mut out = Vec::with_capacity(24);
        out.extend_from_slice(&((magic & !REVISION_MASK) | V3).to_le_bytes());
        out.extend_from_slice(&value[4..20]);
        out.extend_from_slice(&host_root.to_le_bytes());
        Some(out)
    }

    /// The end of a layer: directories get their mode and mtime.
    fn end_layer(&mut self, label: &str) -> Result<()> {
        self.cached = None;
        self.made.clear();
        for (parts, mode, mtime) in std::mem::take(&mut self.dirs).into_iter().rev() {
            let fd = match parts.is_empty() {
                true => self.root.try_clone().stage(STAGE, "dup")?,
                // Replaced by something else later in the layer: skip.
                false => match self.open_dir_nofollow(&parts) {
                    Some(fd) => fd,
                    None => continue,
                },
            };
            let what = format!("{label}: {}", shown(&parts));
            fchmod(fd.as_fd(), Mode::from_bits_truncate(mode))
                .stage(STAGE, format!("{what}: chmod"))?;
            futimens(fd.as_fd(), &time(mtime), &time(mtime))
                .stage(STAGE, format!("{what}: set mtime"))?;
        }
        Ok(())
    }

    fn open_dir_nofollow(&self, parts: &[OsString]) -> Option<OwnedFd> {
        let (name, dir) = parts.split_last()?;
        let parent = self.open_dir(dir, OFlag::O_PATH).ok()?;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        openat(parent.as_fd(), name.as_os_str(), flags, Mode::empty()).ok()
    }

    fn finish_warnings(&self) {
        let warn = |line: String| {
            let _ = io::stderr().write_all(format!("toybox: unpack: warning: {line}\n").as_bytes());
        };
        if self.unmapped_ids > 0 {
            warn(format!(
                "{} owners outside 0..{USERNS_COUNT} (the container's uid map) set to {OVERFLOW_ID}, nobody inside",
                self.unmapped_ids
            ));
        }
        if self.skipped_devices > 0 {
            warn(format!("{} device nodes skipped: making them needs root", self.skipped_devices));
        }
        if self.skipped_xattrs > 0 {
            warn(format!(
                "{} extended attributes the filesystem or our privileges refused",
                self.skipped_xattrs
            ));
        }
        if self.dropped_caps > 0 {
            warn(format!(
                "{} file capabilities dropped: not a v2/v3 capability for a mapped root",
                self.dropped_caps
            ));
        }
    }
}

fn time((secs, nanos): (i64, i64)) -> TimeSpec {
    TimeSpec::new(secs, nanos)
}

/// Removes `name` in `parent` and, for a directory, everything under it,
/// never following a symlink.
fn remove(parent: BorrowedFd, name: &OsStr, what: &str) -> Result<()> {
    match unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) => return Ok(()),
        Err(Errno::EISDIR) | Err(Errno::EPERM) => {}
        Err(e) => return Err(e).stage(STAGE, format!("{what}: remove {}", name.to_string_lossy())),
    }
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = openat(parent, name, flags, Mode::empty())
        .stage(STAGE, format!("{what}: open {}", name.to_string_lossy()))?;
    let mut listing =
        nix::dir::Dir::from_fd(fd.try_clone().stage(STAGE, "dup")?).stage(STAGE, what)?;
    let mut names = Vec::new();
    for entry in listing.iter() {
        let entry = entry.stage(STAGE, what)?;
        let child = OsStr::from_bytes(entry.file_name().to_bytes()).to_os_string();
        if child != "." && child != ".." {
            names.push(child);
        }
    }
    for child in names {
        remove(fd.as_fd(), &child, what)?;
    }
    unlinkat(parent, name, UnlinkatFlags::RemoveDir)
        .stage(STAGE, format!("{what}: rmdir {}", name.to_string_lossy()))
}

// ---------------------------------------------------------------------------
// Done: what the image config says, and the toybox command that runs it.
// ---------------------------------------------------------------------------

fn print_summary(dest: &Path, image: &Image) {
    let mut out = String::new();
    out.push_str(&format!("unpacked {} into {}\n", image.name, dest.display()));
    let Some(config) = &image.config else {
        out.push_str("no image config (a filesystem tar): name the command yourself, e.g.\n");
        out.push_str(&format!("  toybox -m {} -c /bin/sh\n", quote(&dest.display().to_string())));
        let _ = io::stdout().write_all(out.as_bytes());
        return;
    };
    let c = &config["config"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    let entrypoint = strings(&c["Entrypoint"]);
    let cmd = strings(&c["Cmd"]);
    let env = strings(&c["Env"]);
    let workdir = c["WorkingDir"].as_str().unwrap_or("");
    let user = c["User"].as_str().unwrap_or("");
    let ports: Vec<String> =
        c["ExposedPorts"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    out.push_str(&format!("Entrypoint: {}\n", json_list(&entrypoint)));
    out.push_str(&format!("Cmd: {}\n", json_list(&cmd)));
    for e in &env {
        out.push_str(&format!("Env: {e}\n"));
    }
    out.push_str(&format!("WorkingDir: {workdir}\n"));
    out.push_str(&format!("User: {user}\n"));
    out.push_str(&format!("ExposedPorts: {}\n", ports.join(" ")));

    let mut line = vec!["toybox".to_string(), "-m".into(), quote(&dest.display().to_string())];
    let mut notes = Vec::new();
    let (name, group) = user.split_once(':').unwrap_or((user, ""));
    if !name.is_empty() {
        match name.parse::<u32>().ok().or_else(|| lookup_user(dest, name)) {
            Some(uid) => line.extend(["-u".into(), uid.to_string()]),
            None => notes
                .push(format!("User {name}: not in the image's /etc/passwd; -u takes a number")),
        }
    }
    if !group.is_empty() {
        notes.push(format!("the image asks for group {group}; toybox runs with gid = uid"));
    }
    for e in &env {
        line.extend(["-e".into(), quote(e)]);
    }
    if !workdir.is_empty() {
        line.extend(["-w".into(), quote(workdir)]);
    }
    if !ports.is_empty() {
        let first = ports[0].split('/').next().unwrap_or("");
        notes.push(format!(
            "to publish a port add --net bridge -p HOSTPORT:{first} (ports: {})",
            ports.join(" ")
        ));
    }
    let mut command: Vec<String> = entrypoint.iter().chain(&cmd).cloned().collect();
    if command.is_empty() {
        notes.push("the image names no command: /bin/sh here is a guess".into());
        command.push("/bin/sh".into());
    }
    line.push("-c".into());
    line.extend(command.iter().map(|a| quote(a)));
    out.push_str("run it with:\n");
    out.push_str(&format!("  {}\n", line.join(" ")));
    for note in notes {
        out.push_str(&format!("  # {note}\n"));
    }
    let _ = io::stdout().write_all(out.as_bytes());
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

/// A word for a POSIX shell: as it is when plain, else in single quotes.
fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

/// A user name's uid from the image's own /etc/passwd, read inside DEST.
fn lookup_user(dest: &Path, name: &str) -> Option<u32> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let root = openat(nix::fcntl::AT_FDCWD, dest, flags, Mode::empty()).ok()?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(root.as_fd(), "etc/passwd", how).ok()?;
    let mut text = String::new();
    File::from(fd).take(MAX_JSON).read_to_string(&mut text).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_refuse_dotdot_and_absolute() {
        let parts = components(b"./a//b/./c/", "l").ok().unwrap_or_default();
        assert_eq!(parts, ["a", "b", "c"]);
        assert!(components(b"a/../../x", "l").is_err());
        assert!(components(b"/etc/passwd", "l").is_err());
        assert!(components(b"./", "l").is_ok_and(|p| p.is_empty()));
    }

    #[test]
    fn archive_names_are_cleaned() {
        assert_eq!(clean_archive_name(b"./blobs//sha256/x"), "blobs/sha256/x");
        assert_eq!(clean_archive_name(b"b/../a/layer.tar"), "a/layer.tar");
        assert!(archive_path("../x", "l").is_err());
        assert!(archive_path("/x", "l").is_err());
        let hex = "a".repeat(64);
        assert_eq!(digest_in_name(&format!("{hex}.json")), Some(format!("sha256:{hex}")));
        assert_eq!(digest_in_name(&format!("blobs/sha256/{hex}")), Some(format!("sha256:{hex}")));
        assert_eq!(digest_in_name("abc/layer.tar"), None);
        assert!(blob_path("sha256:../../etc", "l").is_err());
    }

    #[test]
    fn pax_times() {
        assert_eq!(pax_time(b"1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(pax_time(b"12"), Some((12, 0)));
        assert_eq!(pax_time(b"x"), None);
    }

    #[test]
    fn shell_words() {
        assert_eq!(quote("/bin/sh"), "/bin/sh");
        assert_eq!(quote("daemon off;"), "'daemon off;'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }
}
