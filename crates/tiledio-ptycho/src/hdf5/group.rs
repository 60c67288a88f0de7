//! Groups and links: symbol-table groups (v1 B-tree + local heap + symbol table nodes), link
//! messages (compact new-style groups) with hard, soft and external links, and path resolution
//! across files with a bounded number of link hops.

use super::format::{BtreeV1, Cur, H5File, Message, UNDEF};
use crate::error::{PtychoError, Result, unsupported};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The most soft or external links followed resolving one path (a cycle ends here).
const MAX_HOPS: u32 = 8;
/// The most links read from one group.
const MAX_LINKS: usize = 1 << 20;

/// Where a link points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Link {
    /// An object header in the same file.
    Hard(u64),
    /// A path in the same file.
    Soft(String),
    /// A path in another file.
    External { file: String, path: String },
}

/// An object found by path: its file, header address, path in that file and messages.
#[derive(Debug)]
pub(super) struct Found {
    pub file: Arc<H5File>,
    pub path: String,
    pub msgs: Vec<Message>,
}

/// Resolves paths, opening externally linked files once each.
#[derive(Debug, Default)]
pub(super) struct Resolver {
    files: HashMap<PathBuf, Arc<H5File>>,
    hops: u32,
}

fn not_found(f: &H5File, object: &str, reason: String) -> PtychoError {
    PtychoError::NotFound {
        path: f.path.clone(),
        object: object.to_string(),
        reason,
    }
}

impl Resolver {
    /// Opens (or reuses) a file.
    pub(super) fn open(&mut self, path: &Path) -> Result<Arc<H5File>> {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if let Some(f) = self.files.get(&key) {
            return Ok(f.clone());
        }
        let f = Arc::new(H5File::open(path)?);
        self.files.insert(key, f.clone());
        Ok(f)
    }

    /// Resolves `path` (absolute, from the root group) in `file`; `req` names the request in
    /// messages.
    pub(super) fn resolve(&mut self, file: Arc<H5File>, path: &str, req: &str) -> Result<Found> {
        self.hops = 0;
        self.walk(file, path, req)
    }

    fn walk(&mut self, mut file: Arc<H5File>, path: &str, req: &str) -> Result<Found> {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
        if comps.len() > 64 {
            return Err(not_found(&file, req, "a path of more than 64 parts".into()));
        }
        let mut msgs = file.object_header(req, file.root)?;
        let mut cur = String::new();
        for comp in comps {
            let links = links(&file, req, &cur, &msgs)?;
            let link = links
                .into_iter()
                .find(|(n, _)| n == comp)
                .map(|(_, l)| l)
                .ok_or_else(|| {
                    not_found(
                        &file,
                        req,
                        format!("no '{comp}' in group {}", if cur.is_empty() { "/" } else { &cur }),
                    )
                })?;
            match link {
                Link::Hard(a) => {
                    cur = format!("{cur}/{comp}");
                    msgs = file.object_header(&cur, a)?;
                }
                Link::Soft(target) => {
                    self.hop(&file, req)?;
                    let full = if target.starts_with('/') {
                        target
                    } else {
                        format!("{cur}/{target}")
                    };
                    let f = self.walk(file.clone(), &full, req)?;
                    (file, cur, msgs) = (f.file, f.path, f.msgs);
                }
                Link::External {
                    file: target_file,
                    path: target_path,
                } => {
                    self.hop(&file, req)?;
                    let link = format!("{cur}/{comp}");
                    let wrap = |source: PtychoError| PtychoError::ExternalLink {
                        path: file.path.clone(),
                        link: link.clone(),
                        target: format!("{target_file}:{target_path}"),
                        source: Box::new(source),
                    };
                    let candidates = external_candidates(&file.path, &target_file);
                    let found = candidates.iter().find(|p| p.exists()).unwrap_or(&candidates[0]).clone();
                    let other = self.open(&found).map_err(wrap)?;
                    let f = self.walk(other, &target_path, &target_path).map_err(wrap)?;
                    (file, cur, msgs) = (f.file, f.path, f.msgs);
                }
            }
        }
        Ok(Found {
            file,
            path: if cur.is_empty() { "/".into() } else { cur },
            msgs,
        })
    }

    fn hop(&mut self, f: &H5File, req: &str) -> Result<()> {
        self.hops += 1;
        if self.hops > MAX_HOPS {
            return Err(f.err(req, 0, "more than 8 soft or external links followed (a cycle?)"));
        }
        Ok(())
    }
}

/// Where an external link's file may be: beside the linking file first (what DECTRIS masters
/// mean), then as written (relative to the working directory); an absolute name as written,
/// then its file name beside the linking file.
fn external_candidates(from: &Path, name: &str) -> Vec<PathBuf> {
    let target = Path::new(name);
    let dir = from.parent().unwrap_or(Path::new(""));
    if target.is_absolute() {
        let mut v = vec![target.to_path_buf()];
        if let Some(n) = target.file_name() {
            v.push(dir.join(n));
        }
        v
    } else {
        vec![dir.join(target), target.to_path_buf()]
    }
}

/// The links of the group whose header messages are `msgs`, in storage order.
pub(super) fn links(f: &H5File, req: &str, group: &str, msgs: &[Message]) -> Result<Vec<(String, Link)>> {
    let gname = if group.is_empty() { "/" } else { group };
    let mut out = Vec::new();
    let mut is_group = false;
    for m in msgs {
        match m.kind {
            0x02 => {
                is_group = true;
                let mut c = Cur::new(f, req, "link info message", &m.data, m.at);
                let _version = c.u8()?;
                let flags = c.u8()?;
                if flags & 1 != 0 {
                    c.skip(8)?;
                }
                let heap = c.addr()?;
                if heap != UNDEF {
                    return Err(unsupported(
                        &f.path,
                        format!(
                            "group {gname} keeps its links in dense storage (fractal heap + v2 B-tree: \
                             more than 8 links), which this reader does not read (needed for {req})"
                        ),
                    ));
                }
            }
            0x06 => {
                is_group = true;
                if out.len() >= MAX_LINKS {
                    return Err(f.err(req, m.at, format!("group {gname} has more than {MAX_LINKS} links")));
                }
                out.push(link_message(f, req, m)?);
            }
            0x11 => {
                is_group = true;
                let mut c = Cur::new(f, req, "symbol table message", &m.data, m.at);
                let btree = c.addr()?;
                let heap = c.addr()?;
                symbol_table(f, req, gname, btree, heap, &mut out)?;
            }
            _ => {}
        }
    }
    if !is_group {
        return Err(not_found(f, req, format!("{gname} is not a group")));
    }
    Ok(out)
}

fn link_message(f: &H5File, req: &str, m: &Message) -> Result<(String, Link)> {
    let mut c = Cur::new(f, req, "link message", &m.data, m.at);
    let v = c.u8()?;
    if v != 1 {
        return Err(c.err(format!("version {v} (1 expected)")));
    }
    let flags = c.u8()?;
    let kind = if flags & 0x08 != 0 { c.u8()? } else { 0 };
    if flags & 0x04 != 0 {
        c.skip(8)?;
    }
    if flags & 0x10 != 0 {
        c.skip(1)?;
    }
    let nlen = c.uint(1 << (flags & 3))? as usize;
    let name = String::from_utf8_lossy(c.bytes(nlen)?).into_owned();
    let link = match kind {
        0 => Link::Hard(c.addr()?),
        1 => {
            let n = c.u16()? as usize;
            Link::Soft(String::from_utf8_lossy(c.bytes(n)?).into_owned())
        }
        64 => {
            let n = c.u16()? as usize;
            let b = c.bytes(n)?;
            let mut parts = b.get(1..).unwrap_or_default().split(|&x| x == 0);
            let file = parts.next().unwrap_or_default();
            let path = parts.next().unwrap_or_default();
            if b.first().copied().unwrap_or(0xff) & 0xf0 != 0 || file.is_empty() || path.is_empty() {
                return Err(c.err(format!("external link '{name}' is malformed")));
            }
            Link::External {
                file: String::from_utf8_lossy(file).into_owned(),
                path: String::from_utf8_lossy(path).into_owned(),
            }
        }
        k => {
            return Err(unsupported(
                &f.path,
                format!("link '{name}' of type {k} (user-defined) on the way to {req}"),
            ));
        }
    };
    Ok((name, link))
}

/// Reads a symbol-table group: the local heap's names and every symbol table node under the
/// v1 B-tree.
fn symbol_table(
    f: &H5File,
    req: &str,
    gname: &str,
    btree: u64,
    heap: u64,
    out: &mut Vec<(String, Link)>,
) -> Result<()> {
    let (hb, hat) = f.read(req, heap, (8 + 2 * f.sl + f.so) as u64, "local heap")?;
    let mut c = Cur::new(f, req, "local heap", &hb, hat);
    c.sig(b"HEAP")?;
    c.skip(4)?;
    let size = c.len()?;
    c.skip(f.sl)?;
    let data = c.addr()?;
    let (names, _) = f.read(req, data, size, "local heap data")?;
    let name_at = |off: u64| -> Result<String> {
        let s = usize::try_from(off).ok().and_then(|o| names.get(o..)).ok_or_else(|| {
            f.err(
                req,
                heap,
                format!("name offset {off} outside the local heap of {gname}"),
            )
        })?;
        let end = s
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| f.err(req, heap, format!("unterminated name in the local heap of {gname}")))?;
        Ok(String::from_utf8_lossy(&s[..end]).into_owned())
    };
    let tree = BtreeV1 {
        node_type: 0,
        key: f.sl,
        max_nodes: 1 << 16,
        what: "group B-tree",
        cyclic: format!("group {gname}: B-tree too deep or cyclic"),
    };
    f.walk_btree_v1(req, btree, &tree, |c, leaf| {
        c.skip(f.sl)?;
        let child = c.addr()?;
        if leaf {
            symbol_node(f, req, child, &name_at, out)?;
        }
        Ok(child)
    })
}

fn symbol_node(
    f: &H5File,
    req: &str,
    node: u64,
    name_at: &dyn Fn(u64) -> Result<String>,
    out: &mut Vec<(String, Link)>,
) -> Result<()> {
    let (h, at) = f.read(req, node, 8, "symbol table node")?;
    let mut c = Cur::new(f, req, "symbol table node", &h, at);
    c.sig(b"SNOD")?;
    let v = c.u8()?;
    if v != 1 {
        return Err(c.err(format!("version {v} (1 expected)")));
    }
    c.skip(1)?;
    let n = u64::from(c.u16()?);
    let entry = (2 * f.so + 24) as u64;
    let (b, bat) = f.read(req, node + 8, n * entry, "symbol table node")?;
    let mut c = Cur::new(f, req, "symbol table node", &b, bat);
    for _ in 0..n {
        if out.len() >= MAX_LINKS {
            return Err(c.err(format!("more than {MAX_LINKS} links")));
        }
        let name = name_at(c.len_as_addr()?)?;
        let header = c.addr()?;
        let cache = c.u32()?;
        c.skip(4)?;
        let scratch = c.bytes(16)?;
        let link = if cache == 2 {
            let off = u32::from_le_bytes([scratch[0], scratch[1], scratch[2], scratch[3]]);
            Link::Soft(name_at(u64::from(off))?)
        } else {
            Link::Hard(header)
        };
        out.push((name, link));
    }
    Ok(())
}

impl Cur<'_> {
    /// A symbol table entry's name offset (an offset-sized field).
    fn len_as_addr(&mut self) -> Result<u64> {
        self.addr()
    }
}
