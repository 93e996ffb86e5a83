//! `hark download` against a local HTTP server serving archives
//! built here: a broken transfer resumes with a range request, a server
//! without ranges starts over, checksums are enforced, and the unpacked
//! dataset is described. No network beyond 127.0.0.1.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use hark_cli::download::{Checksum, Source, describe, fetch};
use md5::{Digest, Md5};

/// How the test server answers.
#[derive(Clone, Copy, Default)]
struct Behaviour {
    /// Honour `Range` with 206 responses.
    ranges: bool,
    /// Close the first response after this many body bytes.
    cut_first_after: Option<usize>,
    /// Close every response after this many body bytes.
    cut_every_after: Option<usize>,
}

/// Serves `body` at `/archive` on a local port; records each request's
/// `Range` header ("" when absent).
struct Server {
    url: String,
    ranges_asked: Arc<Mutex<Vec<String>>>,
}

fn serve(body: Vec<u8>, behaviour: Behaviour) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/archive", listener.local_addr().unwrap());
    let ranges_asked = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&ranges_asked);
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let first = if i == 0 {
                behaviour.cut_first_after
            } else {
                None
            };
            let cut = first.or(behaviour.cut_every_after);
            answer(stream, &body, behaviour.ranges, cut, &log);
        }
    });
    Server { url, ranges_asked }
}

fn answer(
    stream: TcpStream,
    body: &[u8],
    ranges: bool,
    cut: Option<usize>,
    log: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let (mut path, mut range) = (String::new(), String::new());
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        if let Some(p) = line.strip_prefix("GET ") {
            path = p.split(' ').next().unwrap_or("").to_string();
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = v.trim().to_string();
        }
        line.clear();
    }
    log.lock().unwrap().push(range.clone());
    let mut out = stream;
    if path != "/archive" {
        let _ = out
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    let start = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|_| ranges);
    let (status, from) = match start {
        Some(s) if s >= body.len() => {
            let _ = write!(
                out,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                body.len()
            );
            return;
        }
        Some(s) => (
            format!(
                "206 Partial Content\r\nContent-Range: bytes {s}-{}/{}",
                body.len() - 1,
                body.len()
            ),
            s,
        ),
        None => ("200 OK".to_string(), 0),
    };
    let rest = &body[from..];
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        rest.len()
    );
    let sent = cut.map_or(rest.len(), |c| c.min(rest.len()));
    let _ = out.write_all(&rest[..sent]);
}

/// A small demo corpus in UrbanSound8K's layout, as `UrbanSound8K/...` in a
/// `.tar.gz`.
fn urbansound_archive(tmp: &Path) -> Vec<u8> {
    let corpus = tmp.join("corpus");
    let config = hark_data::SynthConfig {
        clips: 20,
        folds: 2,
        max_seconds: 0.5,
        seed: 3,
    };
    hark_data::generate_urban_synth(&corpus, &config).unwrap();
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all("UrbanSound8K", &corpus).unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn source(url: &str, checksum: Option<Checksum>) -> Source {
    Source {
        url: url.to_string(),
        checksum,
        ..Source::named("urbansound8k").unwrap()
    }
}

/// A UrbanSound8K archive built in `tmp`, served with `behaviour(its
/// length)`, and a source for it that checks its md5.
fn served_urbansound(
    tmp: &Path,
    behaviour: impl FnOnce(usize) -> Behaviour,
) -> (Vec<u8>, Server, Source) {
    let archive = urbansound_archive(tmp);
    let server = serve(archive.clone(), behaviour(archive.len()));
    let src = source(&server.url, Some(Checksum::Md5(md5_hex(&archive))));
    (archive, server, src)
}

fn fetch_logged(source: &Source, dir: &Path) -> (anyhow::Result<std::path::PathBuf>, String) {
    let mut log = String::new();
    let result = fetch(source, dir, &mut |l| {
        log.push_str(l);
        log.push('\n');
    });
    (result, log)
}

#[test]
fn a_broken_transfer_resumes_then_verifies_unpacks_and_is_described() {
    let tmp = tempfile::tempdir().unwrap();
    let (archive, server, src) = served_urbansound(tmp.path(), |_| Behaviour {
        ranges: true,
        cut_first_after: Some(1000),
        ..Default::default()
    });
    let dir = tmp.path().join("datasets");
    let (root, log) = fetch_logged(&src, &dir);
    let root = root.unwrap();
    assert_eq!(*server.ranges_asked.lock().unwrap(), ["", "bytes=1000-"]);
    assert!(
        log.contains("resuming (1/5)") && log.contains("md5 verified"),
        "{log}"
    );
    assert_eq!(root, dir.join("UrbanSound8K"));
    assert_eq!(
        std::fs::read(dir.join("UrbanSound8K.tar.gz")).unwrap(),
        archive
    );
    assert!(!dir.join("UrbanSound8K.tar.gz.part").exists());
    assert!(!dir.join(".UrbanSound8K.unpacking").exists());

    let text = describe("urbansound8k", &root).unwrap();
    assert!(
        text.contains("20 clips in ") && text.contains(" minutes"),
        "{text}"
    );
    assert!(
        text.contains("sample rate") && text.contains(" Hz  "),
        "{text}"
    );
    assert!(
        text.contains("bit depth") && text.contains(" bit  "),
        "{text}"
    );

    // A second run finds the dataset and asks the server nothing.
    let (again, log) = fetch_logged(&src, &dir);
    assert_eq!(again.unwrap(), root);
    assert!(log.contains("already there"), "{log}");
    assert_eq!(server.ranges_asked.lock().unwrap().len(), 2);
}

/// Fetches with `part(archive)` already in `<archive>.part` from a server
/// that honours ranges or not; checks the archive arrives whole and returns
/// its length, the `Range` headers the server saw and the log.
fn fetch_with_part(part: fn(&[u8]) -> Vec<u8>, ranges: bool) -> (usize, Vec<String>, String) {
    let tmp = tempfile::tempdir().unwrap();
    let (archive, server, src) = served_urbansound(tmp.path(), |_| Behaviour {
        ranges,
        ..Default::default()
    });
    let dir = tmp.path().join("datasets");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("UrbanSound8K.tar.gz.part"), part(&archive)).unwrap();
    let (root, log) = fetch_logged(&src, &dir);
    root.unwrap();
    let bytes = std::fs::read(dir.join("UrbanSound8K.tar.gz")).unwrap();
    assert!(bytes == archive, "the archive arrived damaged");
    let asked = server.ranges_asked.lock().unwrap().clone();
    (archive.len(), asked, log)
}

#[test]
fn a_partial_file_is_restarted_when_the_server_ignores_ranges() {
    let (_, asked, log) = fetch_with_part(|_| vec![7u8; 500], false);
    assert!(log.contains("cannot resume"), "{log}");
    assert_eq!(asked, ["bytes=500-"]);
}

#[test]
fn a_complete_part_file_is_finished_by_a_416() {
    let (len, asked, log) = fetch_with_part(<[u8]>::to_vec, true);
    assert_eq!(asked, [format!("bytes={len}-")]);
    assert!(log.contains("md5 verified"), "{log}");
}

#[test]
fn a_checksum_mismatch_moves_the_archive_aside_and_unpacks_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = urbansound_archive(tmp.path());
    let server = serve(
        archive,
        Behaviour {
            ranges: true,
            ..Default::default()
        },
    );
    let dir = tmp.path().join("datasets");
    let src = source(&server.url, Some(Checksum::Md5("0".repeat(32))));
    let err = fetch_logged(&src, &dir).0.unwrap_err().to_string();
    assert!(
        err.contains("expected 0000") && err.contains(".bad"),
        "{err}"
    );
    assert!(dir.join("UrbanSound8K.tar.gz.bad").exists());
    assert!(!dir.join("UrbanSound8K.tar.gz").exists());
    assert!(!dir.join("UrbanSound8K").exists());
}

#[test]
fn http_errors_fail_at_once_naming_the_status() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(
        Vec::new(),
        Behaviour {
            ranges: true,
            ..Default::default()
        },
    );
    let src = source(&server.url.replace("/archive", "/missing"), None);
    let err = fetch_logged(&src, tmp.path()).0.unwrap_err();
    assert!(format!("{err:#}").contains("HTTP 404"), "{err:#}");
    assert_eq!(server.ranges_asked.lock().unwrap().len(), 1, "no retries");
}

#[test]
fn an_esc50_zip_without_a_checksum_logs_its_sha256() {
    let tmp = tempfile::tempdir().unwrap();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut csv = String::from("filename,fold,target,category,esc10,src_file,take\n");
    let audio = hark_data::Audio {
        samples: vec![0.25; 800],
        channels: 1,
        sample_rate: 8000,
    };
    let wav = hark_data::encode_wav(&audio, hark_data::Encoding::I16);
    for (i, class) in ["dog", "rain"].iter().enumerate() {
        for fold in 1..=5 {
            let name = format!("{fold}-{i}0-A-{i}.wav");
            csv.push_str(&format!("{name},{fold},{i},{class},False,{i}0{fold},A\n"));
            zip.start_file(format!("ESC-50-master/audio/{name}"), stored)
                .unwrap();
            zip.write_all(&wav).unwrap();
        }
    }
    zip.start_file("ESC-50-master/meta/esc50.csv", stored)
        .unwrap();
    zip.write_all(csv.as_bytes()).unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    let server = serve(
        bytes,
        Behaviour {
            ranges: true,
            ..Default::default()
        },
    );
    let src = Source {
        url: server.url.clone(),
        ..Source::named("esc50").unwrap()
    };
    let dir = tmp.path().join("datasets");
    let (root, log) = fetch_logged(&src, &dir);
    let root = root.unwrap();
    assert_eq!(root, dir.join("ESC-50"));
    assert!(log.contains("no published checksum; sha256:"), "{log}");
    let text = describe("esc50", &root).unwrap();
    assert!(text.contains("10 clips in 2 classes"), "{text}");
    assert!(
        text.contains("8000 Hz  10") && text.contains("16 bit  10"),
        "{text}"
    );
}

#[test]
fn the_command_downloads_and_prints_the_histogram() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = urbansound_archive(tmp.path());
    let checksum = format!("md5:{}", md5_hex(&archive));
    let server = serve(
        archive,
        Behaviour {
            ranges: true,
            ..Default::default()
        },
    );
    let dir = tmp.path().join("data");
    let hark = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_hark"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = hark(&[
        "download",
        "urbansound8k",
        "--dir",
        dir.to_str().unwrap(),
        "--url",
        &server.url,
        "--checksum",
        &checksum,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("sample rate") && stdout.contains("20 clips"),
        "{stdout}"
    );
    assert!(dir.join("UrbanSound8K/metadata/UrbanSound8K.csv").exists());

    for bad in [
        &["download"][..],
        &["download", "audioset"],
        &["download", "esc50", "--checksum", "md5:xyz"],
        &["download", "esc50", "--dir"],
    ] {
        assert_eq!(hark(bad).status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn a_line_that_keeps_breaking_still_finishes_while_each_try_makes_progress() {
    let tmp = tempfile::tempdir().unwrap();
    // More breaks than RETRIES (5), each after an eighth of the archive.
    let (archive, server, src) = served_urbansound(tmp.path(), |len| Behaviour {
        ranges: true,
        cut_every_after: Some(len / 8 + 1),
        ..Default::default()
    });
    let dir = tmp.path().join("datasets");
    let (root, log) = fetch_logged(&src, &dir);
    root.unwrap();
    assert_eq!(server.ranges_asked.lock().unwrap().len(), 8, "{log}");
    assert!(!log.contains("(2/5)"), "progress resets the count: {log}");
    assert!(std::fs::read(dir.join("UrbanSound8K.tar.gz")).unwrap() == archive);
}
