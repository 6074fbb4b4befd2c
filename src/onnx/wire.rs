//! A pass over the protobuf wire format before decoding: it bounds what decoding may allocate.
//!
//! prost decodes a hostile file faithfully, and a 2-byte empty `NodeProto` becomes a struct of
//! about 200 bytes: a file of empty messages would amplify a hundredfold. This pass walks the
//! same message subset as [`super::proto`] without allocating, counts every message, string and
//! packed number decoding would make, and refuses a file past [`MAX_ITEMS`]; it also refuses
//! truncated fields, bad varints and deprecated groups with the byte offset.

/// Most decoded items (messages, strings, packed numbers) a model may have: 4,000,000, a few
/// dozen per node for graphs of 100,000 nodes; each item decodes to at most about 250 bytes, so
/// decoding stays under 1 GB.
pub const MAX_ITEMS: u64 = 4_000_000;

/// The messages of [`super::proto`], for the walk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Msg {
    Model,
    Graph,
    Node,
    Attr,
    TensorInfo,
    TensorData,
    ValueInfo,
    Type,
    TensorType,
    Shape,
    Dim,
    Leaf,
}

/// The message a length-delimited field holds, or `None` for strings, bytes and packed numbers.
fn child(m: Msg, field: u64) -> Option<Msg> {
    use Msg::*;
    Some(match (m, field) {
        (Model, 7) => Graph,
        (Model, 8) => Leaf,
        (Graph, 1) => Node,
        (Graph, 5) => TensorInfo,
        (Graph, 11..=13) => ValueInfo,
        (Graph, 15) => Leaf,
        (Node, 5) => Attr,
        (Node, 9) | (TensorInfo, 13) => Leaf,
        (Attr, 5) => TensorData,
        (ValueInfo, 2) => Type,
        (Type, 1) => TensorType,
        (TensorType, 2) => Shape,
        (Shape, 1) => Dim,
        _ => return None,
    })
}

/// Whether a length-delimited field is a packed repeated number decoding keeps (one item per byte, at most).
fn packed(m: Msg, field: u64) -> bool {
    matches!((m, field), (Msg::TensorInfo, 1) | (Msg::TensorData, 1 | 4 | 5 | 7 | 10) | (Msg::Attr, 7 | 8))
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let Some(&b) = buf.get(*pos) else { return Err(format!("truncated varint at byte {}", *pos)) };
        *pos += 1;
        if shift == 63 && b > 1 {
            return Err(format!("varint longer than 64 bits at byte {}", *pos - 1));
        }
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(format!("varint longer than 10 bytes at byte {}", *pos))
}

/// Walk `buf` (a `ModelProto`), counting items; `Err` with what is wrong and where.
pub fn check(buf: &[u8]) -> Result<u64, String> {
    let mut items = 0;
    walk(buf, 0, Msg::Model, &mut items)?;
    Ok(items)
}

fn walk(buf: &[u8], base: usize, m: Msg, items: &mut u64) -> Result<(), String> {
    let mut pos = 0;
    while pos < buf.len() {
        let at = base + pos;
        let key = varint(buf, &mut pos).map_err(|e| format!("{e} (offset {})", base))?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(buf, &mut pos).map_err(|e| format!("{e} (offset {})", base))?;
            }
            1 | 5 => {
                let n = if wire == 1 { 8 } else { 4 };
                if buf.len() - pos < n {
                    return Err(format!("truncated {n}-byte field {field} at byte {at}"));
                }
                pos += n;
            }
            2 => {
                let len = varint(buf, &mut pos).map_err(|e| format!("{e} (offset {})", base))?;
                if len > (buf.len() - pos) as u64 {
                    return Err(format!(
                        "field {field} at byte {at} claims {len} bytes, {} are left (a truncated file?)",
                        buf.len() - pos
                    ));
                }
                let body = &buf[pos..pos + len as usize];
                *items += 1;
                if let Some(c) = child(m, field) {
                    if c != Msg::Leaf {
                        walk(body, base + pos, c, items)?;
                    }
                } else if packed(m, field) {
                    *items += len;
                }
                if *items > MAX_ITEMS {
                    return Err(format!(
                        "more than {MAX_ITEMS} messages, strings and numbers (the limit; see docs/robustness.md)"
                    ));
                }
                pos += len as usize;
            }
            _ => return Err(format!("unsupported protobuf wire type {wire} (field {field}) at byte {at}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_and_amplification_are_refused() {
        // Field 7 (graph), length 5, but only 2 bytes follow.
        assert!(check(&[0x3a, 5, 0, 0]).unwrap_err().contains("claims 5 bytes, 2 are left"));
        // A varint that never ends.
        assert!(check(&[0x08, 0xff, 0xff]).unwrap_err().contains("truncated varint"));
        // Group wire type 3 (deprecated in proto3): refused.
        assert!(check(&[0x0b]).unwrap_err().contains("wire type 3"));
        // A graph of 3 empty nodes: graph + 3 nodes = 4 items.
        assert_eq!(check(&[0x3a, 6, 0x0a, 0, 0x0a, 0, 0x0a, 0]).unwrap(), 4);
    }
}
