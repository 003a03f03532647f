//! Discern against two references, libmagic and Magika, on a corpus of real and
//! generated files' first 4 KiB, and the speed of ours, file-format alone,
//! libmagic and Magika per sample, in the same run (bench/discern/REPORT.md).
//!
//! The main figures are against the label of record: libmagic and Magika (both
//! on the whole file) where they agree, else the sample's known origin or a
//! hand verdict (`bench/discern/record-verdicts.tsv`), types compared as the
//! families of `bench/discern/families.tsv`; unresolved samples are listed,
//! not counted. Right, agreement where both agree, per-family precision and
//! recall, macro F1, calibration. Magika is timed through its Python library
//! (`pip install magika`). The libmagic-alone tables of issue 6 come first.
//!
//! Build the corpus first (not committed; about 4,000 samples):
//!
//! ```text
//! python3 bench/discern/build-corpus.py /var/tmp/shipote-discern-corpus
//! cargo bench --bench discern -- /var/tmp/shipote-discern-corpus
//! ```
//!
//! The corpus directory is the first argument, else `SHIPOTE_DISCERN_CORPUS`, else
//! `/var/tmp/shipote-discern-corpus`. libmagic is loaded at run time
//! (`libmagic.so.1`, package libmagic1); the bench stops with a message if it is
//! missing, never skipping the comparison.
//!
//! `SHIPOTE_DISCERN_DUMP=FILE` also writes every sample's answers (both libmagic
//! readings, ours, our type, confidence and fastest time in ns) as TSV.
//!
//! Two references, both printed: (a) libmagic on the same 4 KiB prefix we see, and
//! (b) libmagic on the whole original file (the manifest's `libmagic_whole`), while
//! we still see only the first 4 KiB. For each: agreement overall (content only,
//! and with the file name as hint) and per libmagic type, the top disagreements,
//! and accuracy per confidence band. Then median ns/sample with ratios. "Right"
//! counts agreements plus the disagreements whose (reading, libmagic, ours) triple
//! was judged by hand in favour of ours, in `bench/discern/verdicts.tsv` (see
//! `bench/discern/REPORT.md`).

use shipote::discern::{discern, Discernment};
use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// MIME names libmagic and we use for the same thing where the difference is not a
/// disagreement about the content. Only one: libmagic itself cannot tell C from
/// C++ headers by content (a `.h` file is either), and names the same file one or
/// the other by which keywords the first 4 KiB happen to hold.
const EQUIVALENT: &[(&str, &str)] = &[("text/x-c", "text/x-c++")];

const MAGIC_MIME_TYPE: c_int = 0x10;

/// libmagic through dlopen, so the bench builds without libmagic-dev and says
/// clearly when the library is missing.
struct Magic {
    cookie: *mut c_void,
    buffer: unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> *const c_char,
}

impl Magic {
    fn open() -> Result<Self, String> {
        // SAFETY: dlopen/dlsym with NUL-terminated names; the symbols are cast to the
        // prototypes of magic.h (magic_open, magic_load, magic_buffer, magic_error).
        unsafe {
            let lib = libc::dlopen(c"libmagic.so.1".as_ptr(), libc::RTLD_NOW);
            if lib.is_null() {
                return Err(
                    "libmagic.so.1 not found: apt-get install libmagic1 (or libmagic-dev)".into(),
                );
            }
            let sym = |name: &CStr| {
                let p = libc::dlsym(lib, name.as_ptr());
                if p.is_null() {
                    Err(format!("libmagic lacks {name:?}"))
                } else {
                    Ok(p)
                }
            };
            let open: unsafe extern "C" fn(c_int) -> *mut c_void =
                std::mem::transmute(sym(c"magic_open")?);
            let load: unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int =
                std::mem::transmute(sym(c"magic_load")?);
            let buffer = std::mem::transmute::<
                *mut c_void,
                unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> *const c_char,
            >(sym(c"magic_buffer")?);
            let cookie = open(MAGIC_MIME_TYPE);
            if cookie.is_null() || load(cookie, std::ptr::null()) != 0 {
                return Err(
                    "magic_open/magic_load failed: is the magic database installed (libmagic-mgc)?"
                        .into(),
                );
            }
            Ok(Self { cookie, buffer })
        }
    }

    fn mime(&self, sample: &[u8]) -> &str {
        // SAFETY: the cookie is live; libmagic returns a string it owns until the
        // next call on this cookie, which the borrow of `self` outlives only in
        // callers that copy or drop it before calling again.
        unsafe {
            let p = (self.buffer)(self.cookie, sample.as_ptr().cast(), sample.len());
            if p.is_null() {
                return "error";
            }
            CStr::from_ptr(p).to_str().unwrap_or("error")
        }
    }
}

struct Sample {
    path: PathBuf,
    name: String,
    bytes: Vec<u8>,
    /// libmagic on the 4 KiB copy (the bytes we see too).
    cut: String,
    /// libmagic on the whole original file.
    whole: String,
    /// Magika on the whole original file: label and MIME name.
    magika: (String, String),
    /// What a generated file was generated as (empty for others).
    known: String,
    /// The whole file the sample was cut from.
    origin: String,
}

/// Which libmagic answer is the reference.
#[derive(Clone, Copy, PartialEq)]
enum Reading {
    /// libmagic on the same 4 KiB prefix we see.
    Cut,
    /// libmagic on the whole original file; we still see only the first 4 KiB.
    Whole,
}

impl Reading {
    fn of(self, s: &Sample) -> &str {
        match self {
            Self::Cut => &s.cut,
            Self::Whole => &s.whole,
        }
    }
    fn label(self) -> &'static str {
        match self {
            Self::Cut => "reference (a): libmagic on the same 4 KiB prefix",
            Self::Whole => "reference (b): libmagic on the whole original file (we see 4 KiB)",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Self::Cut => "cut",
            Self::Whole => "whole",
        }
    }
}

fn corpus_dir() -> PathBuf {
    std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .or_else(|| std::env::var("SHIPOTE_DISCERN_CORPUS").ok())
        .unwrap_or_else(|| "/var/tmp/shipote-discern-corpus".into())
        .into()
}

fn load(dir: &Path) -> Vec<Sample> {
    let manifest = dir.join("manifest.tsv");
    let rebuild = format!(
        "build the corpus first:\n  python3 bench/discern/build-corpus.py {}",
        dir.display()
    );
    let text = std::fs::read_to_string(&manifest).unwrap_or_else(|e| {
        eprintln!("cannot read {}: {e}\n{rebuild}", manifest.display());
        std::process::exit(2);
    });
    if !text.starts_with("path\tlibmagic\torigin\tlibmagic_whole\tmagika\tmagika_mime\t") {
        eprintln!(
            "{} lacks the Magika columns (an older corpus); {rebuild}",
            manifest.display()
        );
        std::process::exit(2);
    }
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let [rel, cut, origin, whole, _mc, _mcm, _sc, mw, mwm, _sw, known] = f[..] else {
                return None;
            };
            let path = dir.join(rel);
            let bytes = std::fs::read(&path).ok()?;
            // The corpus names files NNNNN-<original name>; the original is the hint.
            let name = rel.rsplit('/').next()?.split_once('-')?.1.to_owned();
            Some(Sample {
                path,
                name,
                bytes,
                cut: cut.to_owned(),
                whole: whole.to_owned(),
                magika: (mw.to_owned(), mwm.to_owned()),
                known: known.to_owned(),
                origin: origin.to_owned(),
            })
        })
        .collect()
}

/// Hand verdicts: (reading, libmagic, ours) -> (verdict, why). The reading is
/// `cut`, `whole` or `any` (the same verdict under both references).
type Verdicts = BTreeMap<(String, String, String), (String, String)>;

fn load_verdicts() -> Verdicts {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/discern/verdicts.tsv");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.len() >= 5).then(|| {
                (
                    (f[0].into(), f[1].into(), f[2].into()),
                    (f[3].into(), f[4].into()),
                )
            })
        })
        .collect()
}

fn verdict<'a>(v: &'a Verdicts, reading: Reading, libmagic: &str, ours: &str) -> Option<&'a str> {
    [reading.key(), "any"].iter().find_map(|r| {
        v.get(&(r.to_string(), libmagic.to_owned(), ours.to_owned()))
            .map(|(v, _)| v.as_str())
    })
}

fn agree(libmagic: &str, ours: &str) -> bool {
    libmagic == ours
        || EQUIVALENT
            .iter()
            .any(|&(a, b)| (a, b) == (libmagic, ours) || (b, a) == (libmagic, ours))
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn pct(a: usize, n: usize) -> f64 {
    if n == 0 {
        0.0
    } else {
        100.0 * a as f64 / n as f64
    }
}

/// Agreement, per type, top disagreements and calibration against one reading.
fn accuracy(
    reading: Reading,
    samples: &[Sample],
    ours: &[Discernment],
    ours_hint: &[Discernment],
    verdicts: &Verdicts,
) {
    struct Row {
        n: usize,
        agree: usize,
        agree_hint: usize,
        right: usize,
        ours: BTreeMap<String, usize>,
    }
    let mut per_type: BTreeMap<&str, Row> = BTreeMap::new();
    let mut confusion: BTreeMap<(String, String), (usize, &Path)> = BTreeMap::new();
    let bands: [(f32, f32, &str); 4] = [
        (0.95, 1.01, "0.95-0.99 signature"),
        (0.8, 0.95, "0.80-0.94 structural"),
        (0.55, 0.8, "0.55-0.79 heuristic"),
        (0.0, 0.55, "0.00-0.54 fallback"),
    ];
    let mut band_rows = [(0usize, 0usize, 0usize); 4];
    let (mut agree_all, mut agree_hint_all, mut right_all) = (0, 0, 0);
    for ((s, d), dh) in samples.iter().zip(ours).zip(ours_hint) {
        let reference = reading.of(s);
        let ok = agree(reference, d.mime());
        let ok_hint = agree(reference, dh.mime());
        let right = ok
            || verdict(verdicts, reading, reference, d.mime())
                .is_some_and(|v| v == "ours" || v == "both");
        let row = per_type.entry(reference).or_insert(Row {
            n: 0,
            agree: 0,
            agree_hint: 0,
            right: 0,
            ours: BTreeMap::new(),
        });
        row.n += 1;
        row.agree += usize::from(ok);
        row.agree_hint += usize::from(ok_hint);
        row.right += usize::from(right);
        agree_all += usize::from(ok);
        agree_hint_all += usize::from(ok_hint);
        right_all += usize::from(right);
        if !ok {
            *row.ours.entry(d.mime().to_owned()).or_default() += 1;
            confusion
                .entry((reference.to_owned(), d.mime().to_owned()))
                .or_insert((0, &s.path))
                .0 += 1;
        }
        let b = bands
            .iter()
            .position(|&(lo, hi, _)| d.confidence >= lo && d.confidence < hi)
            .unwrap_or(3);
        band_rows[b].0 += 1;
        band_rows[b].1 += usize::from(ok);
        band_rows[b].2 += usize::from(right);
    }
    let n = samples.len();
    println!(
        "\n=== {} ({} MIME types) ===",
        reading.label(),
        per_type.len()
    );
    println!(
        "agreement: {:.1}% ({agree_all}/{n}) content only; {:.1}% with the file name as hint; right (agree + judged ours/both in verdicts.tsv): {:.1}%",
        pct(agree_all, n),
        pct(agree_hint_all, n),
        pct(right_all, n)
    );

    println!("\nper libmagic type (content only):");
    println!(
        "{:<44} {:>5} {:>7} {:>7} {:>7}  our other answers",
        "libmagic mime", "n", "agree%", "+hint%", "right%"
    );
    let mut rows: Vec<_> = per_type.iter().collect();
    rows.sort_by_key(|(m, r)| (std::cmp::Reverse(r.n), *m));
    for (m, r) in rows {
        let mut others: Vec<_> = r.ours.iter().collect();
        others.sort_by_key(|(_, c)| std::cmp::Reverse(**c));
        let others: Vec<String> = others
            .iter()
            .take(3)
            .map(|(o, c)| format!("{o} ({c})"))
            .collect();
        println!(
            "{:<44} {:>5} {:>7.1} {:>7.1} {:>7.1}  {}",
            m,
            r.n,
            pct(r.agree, r.n),
            pct(r.agree_hint, r.n),
            pct(r.right, r.n),
            others.join(", ")
        );
    }

    println!("\ntop disagreements (libmagic -> ours, count, verdict, example):");
    let mut conf: Vec<_> = confusion.iter().collect();
    conf.sort_by_key(|(k, (c, _))| (std::cmp::Reverse(*c), (*k).clone()));
    for ((lm, o), (c, example)) in conf.iter().take(40) {
        let v = verdict(verdicts, reading, lm, o).unwrap_or("not judged");
        println!("  {:<5} {lm} -> {o}  [{v}]  {}", c, example.display());
    }

    println!("\ncalibration per confidence band (content only):");
    println!("{:<24} {:>6} {:>8} {:>8}", "band", "n", "agree%", "right%");
    for (i, (_, _, name)) in bands.iter().enumerate() {
        let (bn, ba, br) = band_rows[i];
        println!(
            "{:<24} {:>6} {:>8.1} {:>8.1}",
            name,
            bn,
            pct(ba, bn),
            pct(br, bn)
        );
    }
}

/// Times Magika as a library on the same 4 KiB samples: the model loaded
/// and warmed up first, then `identify_paths` over the whole corpus in one
/// batch, three times; the fastest, per sample (batch amortised).
const MAGIKA_TIMER: &str = r#"
import sys, time
from pathlib import Path
from magika import Magika
paths = [Path(p) for p in sys.stdin.read().splitlines()]
m = Magika()
m.identify_paths(paths[:32])
best = None
for _ in range(3):
    t = time.perf_counter_ns()
    m.identify_paths(paths)
    e = time.perf_counter_ns() - t
    best = e if best is None else min(best, e)
print(best // len(paths))
"#;

fn magika_ns_per_sample(samples: &[Sample]) -> Result<u64, String> {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", MAGIKA_TIMER])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    let list: String = samples
        .iter()
        .map(|s| format!("{}\n", s.path.display()))
        .collect();
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(list.as_bytes())
        .map_err(|e| e.to_string())?;
    let o = child.wait_with_output().map_err(|e| e.to_string())?;
    if !o.status.success() {
        return Err(format!(
            "{} (pip install magika)",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("{e}"))
}

/// How types are compared against the label of record (`families.tsv`).
struct Families {
    /// MIME name -> family (aliases and merges).
    mime: BTreeMap<String, String>,
    /// Magika label -> family.
    magika: BTreeMap<String, String>,
}

impl Families {
    fn load() -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/discern/families.tsv");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut f = Families {
            mime: BTreeMap::new(),
            magika: BTreeMap::new(),
        };
        for l in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let c: Vec<&str> = l.split('\t').collect();
            match c[..] {
                ["alias" | "merge", name, family] => {
                    f.mime.insert(name.into(), family.into());
                }
                ["magika", label, family] => {
                    f.magika.insert(label.into(), family.into());
                }
                _ => panic!("families.tsv: cannot read {l:?}"),
            }
        }
        f
    }

    fn of_mime(&self, mime: &str) -> String {
        self.mime
            .get(mime)
            .cloned()
            .unwrap_or_else(|| mime.to_owned())
    }

    fn of_magika(&self, label: &str, mime: &str) -> String {
        match self.magika.get(label) {
            Some(f) => self.of_mime(f),
            None => self.of_mime(mime),
        }
    }
}

/// Hand verdicts on the label of record (`record-verdicts.tsv`).
#[derive(Default)]
struct RecordVerdicts {
    /// Where libmagic and Magika disagree: (libmagic family, Magika family)
    /// -> family of record.
    pairs: BTreeMap<(String, String), String>,
    /// Where both agree on a name too coarse for the content (a type neither
    /// names): (their family, ours) -> family of record.
    both: BTreeMap<(String, String), String>,
    /// Files judged by hand, by where they come from: a pattern of the
    /// origin path (`*suffix`, or a substring) -> family of record. These
    /// beat every other source.
    origin: Vec<(String, String)>,
}

impl RecordVerdicts {
    fn by_origin(&self, path: &str) -> Option<&str> {
        self.origin.iter().find_map(|(p, f)| {
            let hit = match p.strip_prefix('*') {
                Some(suffix) => path.ends_with(suffix),
                None => path.contains(p.as_str()),
            };
            hit.then_some(f.as_str())
        })
    }
}

fn load_record_verdicts() -> RecordVerdicts {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/discern/record-verdicts.tsv");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut v = RecordVerdicts::default();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = l.split('\t').collect();
        match f[..] {
            ["origin", pattern, record, _why] => {
                v.origin.push((pattern.into(), record.into()));
            }
            ["both", refs, ours, record, _why] => {
                v.both.insert((refs.into(), ours.into()), record.into());
            }
            [libmagic, magika, record, _why] => {
                v.pairs
                    .insert((libmagic.into(), magika.into()), record.into());
            }
            _ => panic!("record-verdicts.tsv: cannot read {l:?}"),
        }
    }
    v
}

/// Where a sample's label of record came from.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Source {
    /// libmagic (whole file) and Magika (whole file) agree.
    Agree,
    /// They disagree; the file was generated as this.
    Known,
    /// They disagree; a hand verdict on the pair decides.
    Verdict,
}

/// Right, agreement, per-family precision and recall, macro F1 and
/// calibration against the label of record: both references where they
/// agree; else the sample's known origin or a hand verdict; else unresolved
/// (listed, never counted).
fn record_report(samples: &[Sample], ours: &[Discernment], fam: &Families) {
    let verdicts = load_record_verdicts();
    let mut record: Vec<Option<(String, Source)>> = Vec::with_capacity(samples.len());
    let mut unresolved: BTreeMap<(String, String), (usize, &Path)> = BTreeMap::new();
    for (s, d) in samples.iter().zip(ours) {
        let lm = fam.of_mime(&s.whole);
        let mg = fam.of_magika(&s.magika.0, &s.magika.1);
        let ours_f = fam.of_mime(d.mime());
        let r = if let Some(f) = verdicts.by_origin(&s.origin) {
            Some((fam.of_mime(f), Source::Verdict))
        } else if !s.known.is_empty() {
            Some((fam.of_mime(&s.known), Source::Known))
        } else if lm == mg {
            match verdicts.both.get(&(lm.clone(), ours_f)) {
                Some(f) => Some((fam.of_mime(f), Source::Verdict)),
                None => Some((lm.clone(), Source::Agree)),
            }
        } else {
            verdicts
                .pairs
                .get(&(lm.clone(), mg.clone()))
                .map(|f| (fam.of_mime(f), Source::Verdict))
        };
        if r.is_none() {
            unresolved.entry((lm, mg)).or_insert((0, &s.path)).0 += 1;
        }
        record.push(r);
    }
    let resolved: Vec<usize> = (0..samples.len())
        .filter(|&i| record[i].is_some())
        .collect();
    let ours_fam: Vec<String> = ours.iter().map(|d| fam.of_mime(d.mime())).collect();
    let right = |i: &usize| record[*i].as_ref().is_some_and(|(f, _)| *f == ours_fam[*i]);
    let n = resolved.len();
    let right_n = resolved.iter().filter(|i| right(i)).count();
    let agree: Vec<usize> = resolved
        .iter()
        .copied()
        .filter(|&i| record[i].as_ref().is_some_and(|(_, s)| *s == Source::Agree))
        .collect();
    let agree_right = agree.iter().filter(|i| right(i)).count();
    // SHIPOTE_DISCERN_WRONG=FILE: every sample ours misses, for reading by hand.
    if let Ok(out) = std::env::var("SHIPOTE_DISCERN_WRONG") {
        let mut text = String::from("path\trecord\tsource\tours\tty\tconfidence\n");
        for &i in resolved.iter().filter(|i| !right(i)) {
            let (f, src) = record[i].as_ref().unwrap();
            text += &format!(
                "{}\t{f}\t{src:?}\t{}\t{}\t{:.2}\n",
                samples[i].path.display(),
                ours_fam[i],
                ours[i].ty(),
                ours[i].confidence
            );
        }
        if let Err(e) = std::fs::write(&out, text) {
            eprintln!("cannot write {out}: {e}");
        }
    }
    let by_source = |src: Source| {
        resolved
            .iter()
            .filter(|&&i| record[i].as_ref().is_some_and(|(_, s)| *s == src))
            .count()
    };
    let families: std::collections::BTreeSet<&str> = resolved
        .iter()
        .map(|&i| record[i].as_ref().unwrap().0.as_str())
        .collect();
    println!(
        "\n=== against the label of record: libmagic and Magika ({}) on the whole file ===",
        std::fs::read_to_string(corpus_dir().join("magika-version.txt"))
            .unwrap_or_default()
            .trim()
    );
    println!(
        "{} samples: {} with a label of record ({} where both agree, {} by known origin, {} by hand verdict), {} unresolved; {} families",
        samples.len(),
        n,
        by_source(Source::Agree),
        by_source(Source::Known),
        by_source(Source::Verdict),
        samples.len() - n,
        families.len()
    );
    println!(
        "right (same family as the label of record): {:.2}% ({right_n}/{n}); where both references agree: {:.2}% ({agree_right}/{})",
        pct(right_n, n),
        pct(agree_right, agree.len()),
        agree.len()
    );

    // Per family: precision and recall of ours against the record.
    struct Counts {
        support: usize,
        predicted: usize,
        tp: usize,
        wrong_as: BTreeMap<String, usize>,
    }
    let mut per: BTreeMap<String, Counts> = BTreeMap::new();
    let blank = || Counts {
        support: 0,
        predicted: 0,
        tp: 0,
        wrong_as: BTreeMap::new(),
    };
    for &i in &resolved {
        let rec = &record[i].as_ref().unwrap().0;
        per.entry(rec.clone()).or_insert_with(blank).support += 1;
        per.entry(ours_fam[i].clone())
            .or_insert_with(blank)
            .predicted += 1;
        if *rec == ours_fam[i] {
            per.get_mut(rec).unwrap().tp += 1;
        } else {
            *per.get_mut(rec)
                .unwrap()
                .wrong_as
                .entry(ours_fam[i].clone())
                .or_default() += 1;
        }
    }
    let f1 = |c: &Counts| {
        let p = if c.predicted == 0 {
            0.0
        } else {
            c.tp as f64 / c.predicted as f64
        };
        let r = if c.support == 0 {
            0.0
        } else {
            c.tp as f64 / c.support as f64
        };
        let f = if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        };
        (p, r, f)
    };
    let big: Vec<&Counts> = per.values().filter(|c| c.support >= 20).collect();
    let macro_f1 = big.iter().map(|c| f1(c).2).sum::<f64>() / big.len().max(1) as f64;
    println!(
        "macro F1 over the {} families with 20 or more samples: {macro_f1:.4}",
        big.len()
    );
    println!("\nper family of record (precision and recall of ours):");
    println!(
        "{:<48} {:>6} {:>7} {:>9} {:>7} {:>7}  ours instead",
        "family", "n", "ours", "precision", "recall", "F1"
    );
    let mut rows: Vec<_> = per.iter().filter(|(_, c)| c.support > 0).collect();
    rows.sort_by_key(|(f, c)| (std::cmp::Reverse(c.support), (*f).clone()));
    for (f, c) in rows {
        let (p, r, f1v) = f1(c);
        let mut w: Vec<_> = c.wrong_as.iter().collect();
        w.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
        let w: Vec<String> = w
            .iter()
            .take(3)
            .map(|(o, n)| format!("{o} ({n})"))
            .collect();
        println!(
            "{:<48} {:>6} {:>7} {:>9.3} {:>7.3} {:>7.3}  {}",
            f,
            c.support,
            c.predicted,
            p,
            r,
            f1v,
            w.join(", ")
        );
    }
    // Answers of ours that are no family of record at all.
    let phantom: Vec<_> = per
        .iter()
        .filter(|(_, c)| c.support == 0 && c.predicted > 0)
        .map(|(f, c)| format!("{f} ({})", c.predicted))
        .collect();
    if !phantom.is_empty() {
        println!("ours, never the label of record: {}", phantom.join(", "));
    }

    println!("\nunresolved (libmagic and Magika disagree, no known origin, no hand verdict; not counted):");
    let mut un: Vec<_> = unresolved.iter().collect();
    un.sort_by_key(|(k, (c, _))| (std::cmp::Reverse(*c), (*k).clone()));
    for ((lm, mg), (c, example)) in un.iter().take(40) {
        println!(
            "  {c:<5} libmagic {lm} / Magika {mg}  {}",
            example.display()
        );
    }
    if un.len() > 40 {
        println!("  ... {} more pairs", un.len() - 40);
    }

    println!("\ncalibration per confidence band, against the label of record:");
    println!("{:<24} {:>6} {:>8}", "band", "n", "right%");
    for (lo, hi, name) in [
        (0.95, 1.01, "0.95-0.99 signature"),
        (0.8, 0.95, "0.80-0.94 structural"),
        (0.55, 0.8, "0.55-0.79 heuristic"),
        (0.0, 0.55, "0.00-0.54 fallback"),
    ] {
        let band: Vec<&usize> = resolved
            .iter()
            .filter(|&&i| ours[i].confidence >= lo && ours[i].confidence < hi)
            .collect();
        let r = band.iter().filter(|i| right(i)).count();
        println!("{:<24} {:>6} {:>8.2}", name, band.len(), pct(r, band.len()));
    }
}

fn main() {
    let dir = corpus_dir();
    let samples = load(&dir);
    if samples.is_empty() {
        eprintln!("no samples in {}", dir.display());
        std::process::exit(2);
    }
    let magic = Magic::open().unwrap_or_else(|e| {
        eprintln!("libmagic is needed as the reference: {e}");
        std::process::exit(2);
    });
    let verdicts = load_verdicts();

    // In-process libmagic must agree with the manifest (same library as `file`).
    let drift = samples
        .iter()
        .filter(|s| magic.mime(&s.bytes) != s.cut)
        .count();
    let differ = samples.iter().filter(|s| s.cut != s.whole).count();
    println!(
        "corpus {}: {} samples (first 4 KiB); in-process libmagic differs from the manifest on {drift}; \
         libmagic names {differ} samples differently on the 4 KiB cut than on the whole file",
        dir.display(),
        samples.len(),
    );

    let ours_answers: Vec<Discernment> = samples.iter().map(|s| discern(&s.bytes, None)).collect();
    let ours_hint: Vec<Discernment> = samples
        .iter()
        .map(|s| discern(&s.bytes, Some(Path::new(&s.name))))
        .collect();
    for reading in [Reading::Cut, Reading::Whole] {
        accuracy(reading, &samples, &ours_answers, &ours_hint, &verdicts);
    }
    record_report(&samples, &ours_answers, &Families::load());

    // Speed: each engine over every sample, five rounds; per-sample times, median.
    let rounds = 5;
    let n = samples.len();
    // Returns (median, mean) over all timings, and each sample's fastest round.
    let time = |f: &mut dyn FnMut(&[u8]) -> usize| {
        let mut ns = Vec::with_capacity(n * rounds);
        let mut best = vec![u64::MAX; n];
        let mut sink = 0usize;
        for _ in 0..rounds {
            for (i, s) in samples.iter().enumerate() {
                let t = Instant::now();
                sink = sink.wrapping_add(f(&s.bytes));
                let e = t.elapsed().as_nanos() as u64;
                ns.push(e);
                best[i] = best[i].min(e);
            }
        }
        std::hint::black_box(sink);
        let total: u64 = ns.iter().sum();
        ((median(&mut ns), total / ns.len() as u64), best)
    };
    let (ours, ours_best) = time(&mut |b| discern(std::hint::black_box(b), None).mime().len());
    let (ff, _) = time(&mut |b| {
        file_format::FileFormat::from_bytes(std::hint::black_box(b))
            .media_type()
            .len()
    });
    let (lm, lm_best) = time(&mut |b| magic.mime(std::hint::black_box(b)).len());
    let mg = magika_ns_per_sample(&samples);
    println!("\nspeed per 4 KiB sample ({rounds} rounds over the corpus):");
    println!(
        "{:<26} {:>12} {:>12} {:>18}",
        "engine", "median ns", "mean ns", "libmagic / this"
    );
    for (name, (med, mean)) in [
        ("shipote discern", ours),
        ("file-format 0.29 alone", ff),
        ("libmagic (in-process)", lm),
    ] {
        println!(
            "{:<26} {:>12} {:>12} {:>17.1}x",
            name,
            med,
            mean,
            lm.0 as f64 / med as f64
        );
    }
    match mg {
        Ok(ns) => println!(
            "{:<26} {:>12} {:>12} {:>17.1}x   (Magika / shipote median: {:.0}x)",
            "Magika (Python, batch)",
            "-",
            ns,
            lm.0 as f64 / ns as f64,
            ns as f64 / ours.0 as f64
        ),
        Err(e) => println!("Magika not timed: {e}"),
    }
    // The tail: where our time goes (fastest of the rounds, so preemption does not
    // pose as a slow sample).
    let mut slow: Vec<usize> = (0..n).collect();
    slow.sort_by_key(|&i| std::cmp::Reverse(ours_best[i]));
    println!(
        "\nslowest samples for shipote discern (fastest of {rounds} rounds; libmagic on the same):"
    );
    for &i in slow.iter().take(8) {
        println!(
            "  {:>8} ns  {:>9} ns  {}  ({})",
            ours_best[i],
            lm_best[i],
            samples[i].path.display(),
            discern(&samples[i].bytes, None).ty()
        );
    }

    // Every answer and its time, for reading disagreements and the tail by hand.
    if let Ok(dump) = std::env::var("SHIPOTE_DISCERN_DUMP") {
        let mut out =
            String::from("path\tlibmagic_cut\tlibmagic_whole\tours\tty\tconfidence\tns\n");
        for ((s, d), ns) in samples.iter().zip(&ours_answers).zip(&ours_best) {
            out += &format!(
                "{}\t{}\t{}\t{}\t{}\t{:.2}\t{ns}\n",
                s.path.display(),
                s.cut,
                s.whole,
                d.mime(),
                d.ty(),
                d.confidence
            );
        }
        if let Err(e) = std::fs::write(&dump, out) {
            eprintln!("cannot write {dump}: {e}");
        }
    }
}
