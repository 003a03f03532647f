//! `shipote discern FILE... | -`: the type of files or stdin, from their first bytes,
//! through the daemon (`Request::Discern`) or in this process (`--local`).

use super::render::{self, Table};
use super::{Failure, Session};
use serde_json::json;
use shipote_protocol::{Request, Response};
use std::io::Read;
use std::path::{Path, PathBuf};

/// How many leading bytes of each input are discerned: what a tap samples, well
/// under the 1 MiB frame limit.
pub const SAMPLE_BYTES: usize = 64 * 1024;

/// `shipote discern`.
#[derive(Debug, clap::Args)]
pub struct DiscernArgs {
    /// Files to discern; `-` reads stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Discern in this process instead of asking the daemon.
    #[arg(long)]
    pub local: bool,
}

/// One answer, whoever gave it.
struct Answer {
    input: String,
    ty: String,
    mime: String,
    confidence: f32,
    lens: String,
}

/// Reads the first [`SAMPLE_BYTES`] of a file, or of stdin for `-`.
fn sample(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(SAMPLE_BYTES);
    if path == Path::new("-") {
        std::io::stdin()
            .lock()
            .take(SAMPLE_BYTES as u64)
            .read_to_end(&mut buf)?;
    } else {
        std::fs::File::open(path)?
            .take(SAMPLE_BYTES as u64)
            .read_to_end(&mut buf)?;
    }
    Ok(buf)
}

fn hint(path: &Path) -> Option<&Path> {
    (path != Path::new("-")).then_some(path)
}

/// One input and its first bytes.
pub type Input = (PathBuf, Vec<u8>);

/// Reads every input: the readable ones, and a message naming each one that
/// could not be read.
pub fn read(args: &DiscernArgs) -> (Vec<Input>, Vec<String>) {
    let mut inputs = Vec::new();
    let mut errors = Vec::new();
    for f in &args.files {
        match sample(f) {
            Ok(s) => inputs.push((f.clone(), s)),
            Err(e) => errors.push(format!("cannot read {}: {e}", f.display())),
        }
    }
    (inputs, errors)
}

/// `--local`: no daemon involved.
pub fn local(inputs: &[Input], json: bool) -> String {
    let answers = inputs
        .iter()
        .map(|(f, s)| {
            let d = crate::discern::discern(s, hint(f));
            Answer {
                input: f.display().to_string(),
                ty: d.ty().to_owned(),
                mime: d.mime().to_owned(),
                confidence: d.confidence,
                lens: d.lens.as_str().to_owned(),
            }
        })
        .collect::<Vec<_>>();
    render(&answers, json)
}

/// Through the daemon: one `Discern` request per input.
pub async fn remote(s: &mut Session, inputs: Vec<Input>) -> Result<String, Failure> {
    let mut answers = Vec::new();
    for (f, sample) in inputs {
        let r = s
            .call(&Request::Discern {
                sample,
                hint_path: hint(&f).map(Path::to_path_buf),
            })
            .await?;
        let Response::Discernment {
            ty,
            confidence,
            mime,
            lens,
        } = r
        else {
            return Err(Failure::Unexpected(Box::new(r)));
        };
        answers.push(Answer {
            input: f.display().to_string(),
            ty,
            mime: mime.unwrap_or_default(),
            confidence,
            lens: lens.unwrap_or_default(),
        });
    }
    Ok(render(&answers, s.json))
}

fn render(answers: &[Answer], json: bool) -> String {
    if json {
        let items: Vec<_> = answers
            .iter()
            .map(|a| {
                json!({
                    "path": a.input, "type": a.ty, "mime": a.mime,
                    "confidence": render::hundredths(a.confidence.into()), "lens": a.lens,
                })
            })
            .collect();
        return format!("{}\n", serde_json::Value::Array(items));
    }
    let mut t = Table::new(["PATH", "TYPE", "MIME", "CONF", "LENS"]);
    for a in answers {
        let conf = format!("{:.0}%", a.confidence * 100.0);
        t.row([&a.input, &a.ty, &a.mime, &conf, &a.lens]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn local_table_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("t.csv");
        std::fs::File::create(&csv)
            .unwrap()
            .write_all(b"a,b\n1,2\n3,4\n5,6\n7,8\n9,10\n")
            .unwrap();
        let args = DiscernArgs {
            files: vec![csv.clone()],
            local: true,
        };
        let (inputs, errors) = read(&args);
        assert!(errors.is_empty(), "{errors:?}");
        let table = local(&inputs, false);
        let mut lines = table.lines();
        assert!(lines.next().unwrap().starts_with("PATH"));
        let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(row[1..], ["csv", "text/csv", "90%", "table"]);
        let j: serde_json::Value = serde_json::from_str(&local(&inputs, true)).unwrap();
        assert_eq!(j[0]["mime"], "text/csv");
        assert_eq!(j[0]["path"], csv.display().to_string());
        assert_eq!(j[0]["type"], "csv");
        assert_eq!(j[0]["confidence"], 0.9, "rounded, not 0.899999976158142");
    }

    #[test]
    fn an_unreadable_file_is_named_and_the_others_are_still_read() {
        let args = DiscernArgs {
            files: vec!["/nonexistent/x".into(), "/etc/passwd".into()],
            local: true,
        };
        let (inputs, errors) = read(&args);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("/nonexistent/x"), "{errors:?}");
        assert_eq!(inputs.len(), 1);
    }
}
