//! `hark download`: fetch a public dataset archive with resume,
//! verify its checksum, unpack it under `datasets/` and describe what
//! arrived (the sample-rate, bit-depth and channel histogram).
//!
//! Each step leaves a state the next run can pick up from: the archive
//! grows in `<archive>.part` (continued with an HTTP range request), a
//! verified archive is kept, and the dataset directory only appears, by one
//! rename, once the whole archive is unpacked.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use md5::{Digest, Md5};
use sha2::Sha256;

/// How often in a row a broken transfer is resumed without progress before
/// giving up.
const RETRIES: u32 = 5;

/// An expected archive digest, as hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// MD5, as published for UrbanSound8K.
    Md5(String),
    /// SHA-256.
    Sha256(String),
}

impl std::str::FromStr for Checksum {
    type Err = anyhow::Error;

    /// `md5:HEX` or `sha256:HEX`.
    fn from_str(s: &str) -> Result<Self> {
        let (algo, hex) = s
            .split_once(':')
            .ok_or_else(|| anyhow!("checksum {s:?}: expected md5:HEX or sha256:HEX"))?;
        let hex = hex.to_ascii_lowercase();
        let (checksum, len) = match algo {
            "md5" => (Self::Md5(hex.clone()), 32),
            "sha256" => (Self::Sha256(hex.clone()), 64),
            _ => bail!("checksum {s:?}: unknown algorithm {algo:?} (md5 or sha256)"),
        };
        if hex.len() != len || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("checksum {s:?}: {algo} needs {len} hex digits");
        }
        Ok(checksum)
    }
}

/// Where a dataset comes from and where it goes.
#[derive(Debug, Clone)]
pub struct Source {
    /// The name on the command line, e.g. `urbansound8k`.
    pub name: String,
    /// The archive's URL.
    pub url: String,
    /// The archive's file name in the download directory.
    pub archive: String,
    /// The expected digest; `None` when the source publishes none.
    pub checksum: Option<Checksum>,
    /// The folder the archive holds everything in.
    pub top_dir: String,
    /// The dataset's folder in the download directory.
    pub target: String,
    /// The hark-data layout, for the histogram.
    pub kind: String,
}

impl Source {
    /// The datasets `hark download` knows.
    ///
    /// # Errors
    /// An unknown name.
    pub fn named(name: &str) -> Result<Self> {
        let source =
            |url: &str, archive: &str, checksum, top: &str, target: &str, kind: &str| Self {
                name: name.to_string(),
                url: url.to_string(),
                archive: archive.to_string(),
                checksum,
                top_dir: top.to_string(),
                target: target.to_string(),
                kind: kind.to_string(),
            };
        Ok(match name {
            // Zenodo record 1203745 publishes this MD5.
            "urbansound8k" => source(
                "https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz?download=1",
                "UrbanSound8K.tar.gz",
                Some(Checksum::Md5("9aa69802bbf37fb986f71ec1483a196e".into())),
                "UrbanSound8K",
                "UrbanSound8K",
                "urbansound8k",
            ),
            // The archive of a branch: no published, stable digest.
            "esc50" => source(
                "https://github.com/karolpiczak/ESC-50/archive/refs/heads/master.zip",
                "ESC-50-master.zip",
                None,
                "ESC-50-master",
                "ESC-50",
                "esc50",
            ),
            _ => bail!("unknown dataset {name:?} (urbansound8k or esc50)"),
        })
    }
}

/// Downloads, verifies and unpacks `source` into `dir` (skipping each step
/// already done) and returns the dataset directory. `log` receives progress
/// lines.
///
/// # Errors
/// A transfer that keeps failing, an HTTP error status, a checksum
/// mismatch (the archive is then renamed to `<archive>.bad`), or an archive
/// that cannot be unpacked or lacks its top folder.
pub fn fetch(source: &Source, dir: &Path, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let root = dir.join(&source.target);
    if root.is_dir() {
        log(&format!("{} is already there", root.display()));
        return Ok(root);
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let archive = dir.join(&source.archive);
    if archive.exists() {
        log(&format!("{} is already downloaded", archive.display()));
    } else {
        download(&source.url, &archive, log)?;
    }
    verify(&archive, source.checksum.as_ref(), log)?;
    let staging = dir.join(format!(".{}.unpacking", source.target));
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .with_context(|| format!("removing the unfinished {}", staging.display()))?;
    }
    log(&format!("unpacking {}", archive.display()));
    unpack(&archive, &staging)?;
    let top = staging.join(&source.top_dir);
    if !top.is_dir() {
        bail!(
            "{}: the archive holds no {}/ folder",
            archive.display(),
            source.top_dir
        );
    }
    fs::rename(&top, &root)
        .with_context(|| format!("moving {} to {}", top.display(), root.display()))?;
    fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    Ok(root)
}

/// Why one transfer attempt ended early.
enum Failure {
    /// Worth resuming: the connection broke.
    Transient(anyhow::Error),
    /// Not worth retrying: an HTTP error status, a local file error.
    Fatal(anyhow::Error),
}

/// Streams `url` to `dest`, through `<dest>.part`, resuming a partial file
/// with a range request and retrying a broken connection.
///
/// # Errors
/// An HTTP error status, a local write error, or a transfer still broken
/// after the retries.
pub fn download(url: &str, dest: &Path, log: &mut dyn FnMut(&str)) -> Result<()> {
    let part = PathBuf::from(format!("{}.part", dest.display()));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_body(Some(Duration::from_secs(120)))
        .user_agent(concat!("hark/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let size = || fs::metadata(&part).map_or(0, |m| m.len());
    let fail = |e: anyhow::Error| e.context(format!("downloading {url} to {}", part.display()));
    let mut attempt = 0;
    loop {
        let before = size();
        match transfer(&agent, url, &part, log) {
            Ok(()) => break,
            Err(Failure::Transient(e)) => {
                // Only breaks in a row without progress count against the
                // retries: a long download over a flaky line goes on.
                attempt = if size() > before { 1 } else { attempt + 1 };
                if attempt > RETRIES {
                    return Err(fail(e));
                }
                log(&format!("{e:#}; resuming ({attempt}/{RETRIES})"));
                std::thread::sleep(Duration::from_millis(250 << attempt));
            }
            Err(Failure::Fatal(e)) => return Err(fail(e)),
        }
    }
    fs::rename(&part, dest)
        .with_context(|| format!("renaming {} to {}", part.display(), dest.display()))
}

/// One request: continue `part` from its length, or start it over when
/// the server ignores the range.
fn transfer(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    log: &mut dyn FnMut(&str),
) -> std::result::Result<(), Failure> {
    let fatal = |e: anyhow::Error| Failure::Fatal(e);
    let have = fs::metadata(part).map_or(0, |m| m.len());
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let mut response = request
        .call()
        .map_err(|e| Failure::Transient(anyhow!("{url}: {e}")))?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (start, total) = match response.status().as_u16() {
        206 => {
            let range = header("content-range").unwrap_or_default();
            let (start, total) = parse_content_range(&range)
                .ok_or_else(|| fatal(anyhow!("{url}: bad Content-Range {range:?}")))?;
            if start != have {
                let _ = fs::remove_file(part);
                return Err(Failure::Transient(anyhow!(
                    "{url}: asked for bytes from {have}, got them from {start}; starting over"
                )));
            }
            (start, total)
        }
        200 => {
            if have > 0 {
                log(&format!(
                    "the server cannot resume; downloading {url} from the start"
                ));
            }
            (0, header("content-length").and_then(|v| v.parse().ok()))
        }
        // The partial file already holds everything.
        416 if have > 0 => return Ok(()),
        status => return Err(fatal(anyhow!("{url}: HTTP {status}"))),
    };
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(start > 0)
        .truncate(start == 0)
        .open(part)
        .map_err(|e| fatal(anyhow!("{}: {e}", part.display())))?;
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = start;
    let began = Instant::now();
    let mut last_report = Instant::now();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                return Err(Failure::Transient(anyhow!(
                    "{url}: connection broken after {done} bytes: {e}"
                )));
            }
        };
        file.write_all(&buf[..n])
            .map_err(|e| fatal(anyhow!("{}: {e}", part.display())))?;
        done += n as u64;
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let rate = (done - start) as f64 / began.elapsed().as_secs_f64().max(1e-9);
            log(&progress_line(done, total, rate));
        }
    }
    file.flush()
        .map_err(|e| fatal(anyhow!("{}: {e}", part.display())))?;
    match total {
        Some(total) if done < total => Err(Failure::Transient(anyhow!(
            "{url}: connection closed after {done} of {total} bytes"
        ))),
        _ => Ok(()),
    }
}

fn progress_line(done: u64, total: Option<u64>, rate: f64) -> String {
    let mb = |b: u64| b as f64 / 1e6;
    let mut line = format!("{:.1} MB", mb(done));
    if let Some(t) = total {
        let _ = write!(
            line,
            " of {:.1} MB ({:.0}%)",
            mb(t),
            100.0 * done as f64 / t as f64
        );
    }
    let _ = write!(line, ", {:.1} MB/s", rate / 1e6);
    line
}

/// `bytes START-END/TOTAL` → (START, TOTAL); TOTAL may be `*`.
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start, total))
}

fn digest<D: Digest>(path: &Path) -> Result<String> {
    let mut file =
        BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    let mut hasher = D::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// Checks `archive` against `checksum`; without one, logs its SHA-256 so it
/// can be pinned with `--checksum`.
///
/// # Errors
/// A mismatch: the archive is renamed to `<archive>.bad` (kept for a look,
/// out of the way of the next download).
pub fn verify(
    archive: &Path,
    checksum: Option<&Checksum>,
    log: &mut dyn FnMut(&str),
) -> Result<()> {
    let (algo, want, got) = match checksum {
        Some(Checksum::Md5(want)) => ("md5", want, digest::<Md5>(archive)?),
        Some(Checksum::Sha256(want)) => ("sha256", want, digest::<Sha256>(archive)?),
        None => {
            let sha = digest::<Sha256>(archive)?;
            log(&format!(
                "{}: no published checksum; sha256:{sha} (pin it with --checksum)",
                archive.display()
            ));
            return Ok(());
        }
    };
    if &got == want {
        log(&format!("{}: {algo} verified", archive.display()));
        return Ok(());
    }
    let bad = PathBuf::from(format!("{}.bad", archive.display()));
    fs::rename(archive, &bad).with_context(|| format!("renaming {}", archive.display()))?;
    bail!(
        "{}: {algo} is {got}, expected {want}; moved to {} (run again to download afresh)",
        archive.display(),
        bad.display()
    )
}

/// Unpacks a `.tar.gz`/`.tgz` or `.zip` into `into` (entries that would
/// land outside it are refused by the readers).
///
/// # Errors
/// An unknown extension or a damaged archive.
pub fn unpack(archive: &Path, into: &Path) -> Result<()> {
    let name = archive.to_string_lossy();
    let file = File::open(archive).with_context(|| format!("opening {name}"))?;
    let context = || format!("unpacking {name} into {}", into.display());
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        let gz = flate2::read::GzDecoder::new(BufReader::new(file));
        tar::Archive::new(gz).unpack(into).with_context(context)
    } else if name.ends_with(".zip") {
        zip::ZipArchive::new(BufReader::new(file))
            .and_then(|mut z| z.extract(into))
            .with_context(context)
    } else {
        bail!("{name}: not a .tar.gz, .tgz or .zip archive")
    }
}

/// The dataset at `root` read as `kind`: clips, classes, hours, and how
/// many files have each sample rate, bit depth and channel count.
///
/// # Errors
/// A dataset that cannot be opened.
pub fn describe(kind: &str, root: &Path) -> Result<String> {
    let kind: hark_data::DatasetKind = kind.parse()?;
    let dataset = hark_data::open_dataset(kind, root, &hark_data::LoadOptions::default())
        .with_context(|| format!("reading {}", root.display()))?;
    let h = hark_data::format_histogram(&dataset);
    let length = if h.total_seconds < 3600.0 {
        format!("{:.1} minutes", h.total_seconds / 60.0)
    } else {
        format!("{:.2} hours", h.total_seconds / 3600.0)
    };
    let mut s = format!(
        "{}: {} clips in {} classes, {length}\n",
        root.display(),
        dataset.examples.len(),
        dataset.classes.len(),
    );
    let mut table = |title: &str, rows: Vec<(String, usize)>| {
        let _ = writeln!(s, "{title:>12}  files");
        for (value, n) in rows {
            let _ = writeln!(s, "{value:>12}  {n}");
        }
    };
    table(
        "sample rate",
        h.sample_rates
            .iter()
            .map(|(r, n)| (format!("{r} Hz"), *n))
            .collect(),
    );
    table(
        "bit depth",
        h.bit_depths
            .iter()
            .map(|(b, n)| (format!("{b} bit"), *n))
            .collect(),
    );
    table(
        "channels",
        h.channels
            .iter()
            .map(|(c, n)| (c.to_string(), *n))
            .collect(),
    );
    if !h.unreadable.is_empty() {
        let _ = writeln!(s, "{} unreadable files, e.g.:", h.unreadable.len());
        for u in h.unreadable.iter().take(5) {
            let _ = writeln!(s, "  {}: {}", u.path.display(), u.reason);
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

    #[test]
    fn checksums_parse_and_refuse_bad_hex() {
        assert_eq!(
            "md5:9AA69802BBF37FB986F71EC1483A196E"
                .parse::<Checksum>()
                .unwrap(),
            Checksum::Md5("9aa69802bbf37fb986f71ec1483a196e".into())
        );
        assert!("md5:abc".parse::<Checksum>().is_err());
        assert!("crc:00".parse::<Checksum>().is_err());
        assert!("deadbeef".parse::<Checksum>().is_err());
    }

    #[test]
    fn known_sources() {
        let us = Source::named("urbansound8k").unwrap();
        assert_eq!(us.archive, "UrbanSound8K.tar.gz");
        assert!(us.checksum.is_some());
        assert!(Source::named("esc50").unwrap().url.ends_with(".zip"));
        assert!(Source::named("audioset").is_err());
    }
}
