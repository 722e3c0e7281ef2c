//! Reading a data file into raw records: a JSON array or JSON Lines, decided by the first
//! non-blank byte (`[` for an array; anything else is read as JSON Lines).
//!
//! Both are split into records before anything is decoded, so that one bad record (invalid
//! UTF-8, a syntax error, a file cut short) is reported at its own line or record index and can
//! be skipped, instead of failing the whole file at the first bad byte. Arrays are split by a
//! byte-level scan that tracks strings and brackets; only damage that leaves the records
//! impossible to locate (mismatched brackets, missing commas) stops the whole file.
//!
//! Feeds [`super::load`], which detects the layout and parses each object.

use serde_json::{Map, Value};

use super::{json_type, FileKind, Location, Problem};

/// One record as read: its location and either its JSON object or what is wrong with it.
#[derive(Debug, Clone)]
pub struct RawRecord {
    /// Where it is.
    pub location: Location,
    /// The object, or the problem that kept it from being one.
    pub object: Result<Map<String, Value>, Problem>,
}

/// The records of one file.
#[derive(Debug, Clone)]
pub struct Records {
    /// Array or JSON Lines.
    pub kind: FileKind,
    /// Every record, valid or not, in file order.
    pub records: Vec<RawRecord>,
}

/// Damage that leaves the records of a file impossible to locate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsplittable {
    /// 1-based line of the damage.
    pub line: usize,
    /// What was found and what was expected.
    pub message: String,
}

/// Splits `bytes` (a whole file) into records.
///
/// # Errors
/// [`Unsplittable`] when an array's structure is broken between records, or the file is one
/// JSON object spread over several lines.
pub fn read_records(bytes: &[u8]) -> Result<Records, Unsplittable> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = bytes.iter().position(|b| !b.is_ascii_whitespace());
    match first {
        Some(start) if bytes[start] == b'[' => read_array(bytes, start),
        _ => read_lines(bytes),
    }
}

/// A byte cursor that counts lines.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Some(b)
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.bump();
        }
    }

    /// After an opening quote: moves past the closing one; false when the file ends first.
    fn skip_string(&mut self) -> bool {
        loop {
            match self.bump() {
                None => return false,
                Some(b'\\') => {
                    if self.bump().is_none() {
                        return false;
                    }
                }
                Some(b'"') => return true,
                Some(_) => {}
            }
        }
    }

    /// Moves past one JSON value; `Ok(false)` when the file ends inside it.
    fn skip_value(&mut self) -> Result<bool, Unsplittable> {
        match self.peek() {
            Some(b'{' | b'[') => {
                let mut closers = Vec::new();
                loop {
                    match self.bump() {
                        None => return Ok(false),
                        Some(b'"') => {
                            if !self.skip_string() {
                                return Ok(false);
                            }
                        }
                        Some(b'{') => closers.push(b'}'),
                        Some(b'[') => closers.push(b']'),
                        Some(b @ (b'}' | b']')) => {
                            if closers.pop() != Some(b) {
                                return Err(Unsplittable {
                                    line: self.line,
                                    message: format!("mismatched `{}`", b as char),
                                });
                            }
                            if closers.is_empty() {
                                return Ok(true);
                            }
                        }
                        Some(_) => {}
                    }
                }
            }
            Some(b'"') => {
                self.bump();
                Ok(self.skip_string())
            }
            _ => {
                // A number, literal or garbage: up to the next separator; serde judges it.
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b']') && !b.is_ascii_whitespace())
                {
                    self.bump();
                }
                Ok(true)
            }
        }
    }
}

/// A record's byte range inside an array.
struct Span {
    start: usize,
    end: usize,
    line: usize,
    truncated: bool,
}

fn read_array(bytes: &[u8], open: usize) -> Result<Records, Unsplittable> {
    let line = 1 + bytes[..open].iter().filter(|&&b| b == b'\n').count();
    let mut cursor = Cursor {
        bytes,
        pos: open + 1,
        line,
    };
    let spans = split_array(&mut cursor)?;
    let records = spans
        .into_iter()
        .enumerate()
        .map(|(record, span)| {
            let location = Location {
                kind: FileKind::Json,
                record,
                line: span.line,
            };
            if span.truncated {
                return RawRecord {
                    location,
                    object: Err(Problem::Truncated),
                };
            }
            parse_record(&bytes[span.start..span.end], location, false)
        })
        .collect();
    Ok(Records {
        kind: FileKind::Json,
        records,
    })
}

/// The spans of the array's elements; a file that ends early yields a last, truncated span.
fn split_array(cursor: &mut Cursor<'_>) -> Result<Vec<Span>, Unsplittable> {
    let mut spans = Vec::new();
    cursor.skip_whitespace();
    if cursor.peek() == Some(b']') {
        cursor.bump();
        return finish_array(cursor, spans);
    }
    loop {
        cursor.skip_whitespace();
        let (start, line) = (cursor.pos, cursor.line);
        match cursor.peek() {
            None => {
                spans.push(Span {
                    start,
                    end: start,
                    line,
                    truncated: true,
                });
                return Ok(spans);
            }
            Some(b']') => {
                return Err(Unsplittable {
                    line,
                    message: format!(
                        "a `,` before the closing `]` after record {}; remove it",
                        spans.len() - 1
                    ),
                })
            }
            Some(_) => {}
        }
        let complete = cursor.skip_value()?;
        spans.push(Span {
            start,
            end: cursor.pos,
            line,
            truncated: !complete,
        });
        if !complete {
            return Ok(spans);
        }
        cursor.skip_whitespace();
        match cursor.bump() {
            Some(b',') => {}
            Some(b']') => return finish_array(cursor, spans),
            None => {
                // `]` missing: more records may have been cut off; report the gap as one.
                let (pos, line) = (cursor.pos, cursor.line);
                spans.push(Span {
                    start: pos,
                    end: pos,
                    line,
                    truncated: true,
                });
                return Ok(spans);
            }
            Some(other) => {
                return Err(Unsplittable {
                    line: cursor.line,
                    message: format!(
                        "expected `,` or `]` after record {}, found {:?}",
                        spans.len() - 1,
                        other as char
                    ),
                })
            }
        }
    }
}

fn finish_array(cursor: &mut Cursor<'_>, spans: Vec<Span>) -> Result<Vec<Span>, Unsplittable> {
    cursor.skip_whitespace();
    match cursor.peek() {
        None => Ok(spans),
        Some(_) => Err(Unsplittable {
            line: cursor.line,
            message: "unexpected data after the closing `]` of the array".to_owned(),
        }),
    }
}

fn read_lines(bytes: &[u8]) -> Result<Records, Unsplittable> {
    let segments: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let mut records = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let segment = segment.strip_suffix(b"\r").unwrap_or(segment);
        if segment.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let location = Location {
            kind: FileKind::Jsonl,
            record: records.len(),
            line: i + 1,
        };
        let unterminated = i + 1 == segments.len();
        let record = parse_record(segment, location, unterminated);
        if records.is_empty()
            && record.object.is_err()
            && bytes[..].trim_ascii_start().starts_with(b"{")
        {
            if let Ok(Value::Object(_)) = serde_json::from_slice::<Value>(bytes) {
                return Err(Unsplittable {
                    line: 1,
                    message: "the file is one JSON object over several lines; expected a JSON array of records \
                              or one object per line (JSON Lines)"
                        .to_owned(),
                });
            }
        }
        records.push(record);
    }
    Ok(Records {
        kind: FileKind::Jsonl,
        records,
    })
}

/// Decodes and parses one record's bytes. `unterminated`: the last line of a JSON Lines file
/// without a final newline, where running out of input means the file was cut short.
fn parse_record(bytes: &[u8], location: Location, unterminated: bool) -> RawRecord {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let offset = e.valid_up_to();
            let line = location.line + bytes[..offset].iter().filter(|&&b| b == b'\n').count();
            return RawRecord {
                location: Location { line, ..location },
                object: Err(Problem::InvalidUtf8 { offset }),
            };
        }
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => match duplicate_key(text) {
            None => RawRecord {
                location,
                object: Ok(map),
            },
            Some(key) => RawRecord {
                location,
                object: Err(Problem::Syntax(format!(
                    "the key {key:?} appears twice in this record; keep one (JSON readers disagree on which wins)"
                ))),
            },
        },
        Ok(other) => RawRecord {
            location,
            object: Err(Problem::NotAnObject {
                found: json_type(&other),
            }),
        },
        Err(e) if e.is_eof() && unterminated => RawRecord {
            location,
            object: Err(Problem::Truncated),
        },
        Err(e) => {
            let message = e.to_string();
            let message = message
                .rfind(" at line ")
                .map_or(message.as_str(), |i| &message[..i]);
            let line = location.line + e.line().saturating_sub(1);
            let problem = Problem::Syntax(format!("{message} (column {})", e.column()));
            RawRecord {
                location: Location { line, ..location },
                object: Err(problem),
            }
        }
    }
}

/// The first key that appears twice among a JSON object's own keys, if any (serde_json's
/// `Value` keeps the last silently).
fn duplicate_key(object: &str) -> Option<String> {
    struct Keys;
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            // Read to the end: the deserializer fails on a map left unfinished.
            let (mut seen, mut twice) = (std::collections::HashSet::new(), None);
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                if !seen.insert(key.clone()) && twice.is_none() {
                    twice = Some(key);
                }
            }
            Ok(twice)
        }
    }
    use serde::Deserializer as _;
    serde_json::Deserializer::from_str(object)
        .deserialize_map(Keys)
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_with_a_key_twice_is_refused_by_name() {
        assert_eq!(duplicate_key(r#"{"a": 1, "a": 2}"#), Some("a".to_owned()));
        assert_eq!(
            duplicate_key(r#"{"p": "p", "a": "x", "a": "y", "r": "c"}"#),
            Some("a".to_owned())
        );
        let records = read_records(
            b"{\"prompt\": \"p\", \"chosen\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n{\"prompt\": \"q\", \"meta\": {\"x\": 1}}\n",
        )
        .unwrap()
        .records;
        match &records[0].object {
            Err(Problem::Syntax(message)) => {
                assert!(message.contains("\"chosen\" appears twice"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(records[1].object.is_ok());
        assert_eq!(duplicate_key(r#"{"a": 1, "a": 2}"#), Some("a".to_owned()));
        assert_eq!(
            duplicate_key(r#"{"a": {"b": 1, "b": 2}, "c": 3}"#),
            None,
            "own keys only"
        );
    }

    fn problems(bytes: &[u8]) -> Vec<(usize, usize, Option<Problem>)> {
        read_records(bytes)
            .unwrap()
            .records
            .into_iter()
            .map(|r| (r.location.record, r.location.line, r.object.err()))
            .collect()
    }

    #[test]
    fn arrays_split_into_records_with_lines() {
        let text = b"[\n {\"a\": \"x]}\\\"\"},\n {\"b\": [1, {\"c\": 2}]}\n]\n";
        let records = read_records(text).unwrap();
        assert_eq!(records.kind, FileKind::Json);
        assert_eq!(problems(text), vec![(0, 2, None), (1, 3, None)]);
        assert_eq!(records.records[0].object.as_ref().unwrap()["a"], "x]}\"");
        assert!(read_records(b"  []  ").unwrap().records.is_empty());
    }

    #[test]
    fn a_bad_record_does_not_hide_the_next_one() {
        let text = b"[{\"a\": 1}, {\"a\": tru}, 7, {\"a\": \"\xff\"}, {\"a\": 2}]";
        let got = problems(text);
        assert!(matches!(got[1].2, Some(Problem::Syntax(_))));
        assert_eq!(got[2].2, Some(Problem::NotAnObject { found: "a number" }));
        assert_eq!(got[3].2, Some(Problem::InvalidUtf8 { offset: 7 }));
        assert_eq!(got[4], (4, 1, None));
    }

    #[test]
    fn truncated_arrays_keep_their_complete_records() {
        let got = problems(b"[{\"a\": 1},\n{\"a\": \"unfinished");
        assert_eq!(got, vec![(0, 1, None), (1, 2, Some(Problem::Truncated))]);
        let got = problems(b"[{\"a\": 1}");
        assert_eq!(got, vec![(0, 1, None), (1, 1, Some(Problem::Truncated))]);
    }

    #[test]
    fn broken_array_structure_is_unsplittable() {
        assert!(read_records(b"[{\"a\": 1} {\"a\": 2}]")
            .unwrap_err()
            .message
            .contains("expected `,` or `]`"));
        assert!(read_records(b"[{\"a\": 1],\n{}]")
            .unwrap_err()
            .message
            .contains("mismatched `]`"));
        assert!(read_records(b"[{\"a\": 1},]")
            .unwrap_err()
            .message
            .contains("remove it"));
        assert!(read_records(b"[{}] x")
            .unwrap_err()
            .message
            .contains("after the closing"));
        let err = read_records(b"{\n\"a\": 1\n}\n").unwrap_err();
        assert!(
            err.message.contains("one JSON object over several lines"),
            "{err:?}"
        );
    }

    #[test]
    fn json_lines_report_lines_and_truncation() {
        let text = b"{\"a\": 1}\r\n\n{\"a\": \n{\"a\": \"\xc3\x28\"}\n{\"a\": 3}\n{\"a\": \"cut";
        let got = problems(text);
        assert_eq!(got[0], (0, 1, None));
        assert!(matches!(&got[1], (1, 3, Some(Problem::Syntax(m))) if m.contains("EOF")));
        assert_eq!(got[2], (2, 4, Some(Problem::InvalidUtf8 { offset: 7 })));
        assert_eq!(got[3], (3, 5, None));
        assert_eq!(got[4], (4, 6, Some(Problem::Truncated)));
        // A last line without a newline is fine when it is complete.
        assert_eq!(problems(b"{\"a\": 1}"), vec![(0, 1, None)]);
        // A byte-order mark is ignored.
        assert_eq!(problems(b"\xEF\xBB\xBF{\"a\": 1}\n"), vec![(0, 1, None)]);
    }
}
