//! Which file is mapped at an address of this process, from `/proc/self/maps`: how a
//! kernel loaded from a shared object is named to a worker process, which loads the file
//! again and checks that it got the same one.

/// Which file a mapping comes from: (device major, device minor, inode), as
/// `/proc/self/maps` shows them.
pub type FileId = (u32, u32, u64);

/// The file mapped at `addr` in this process (`None`: no file, or /proc unreadable).
/// Reads all of `/proc/self/maps`: tens of microseconds in a process with many mappings,
/// so [`Kernel`](crate::Kernel) reads it once, when it loads a shared object.
pub fn mapped_file(addr: usize) -> Option<FileId> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let (range, id) = parse_maps_line(line)?;
        range.contains(&addr).then_some(id)
    })
}

/// (address range, file) of one line of `/proc/self/maps` that maps a file:
/// `start-end perms offset major:minor inode [path]`; `None` for anonymous mappings
/// (inode 0) and lines that do not parse.
pub fn parse_maps_line(line: &str) -> Option<(std::ops::Range<usize>, FileId)> {
    let mut f = line.split_ascii_whitespace();
    let (lo, hi) = f.next()?.split_once('-')?;
    let lo = usize::from_str_radix(lo, 16).ok()?;
    let hi = usize::from_str_radix(hi, 16).ok()?;
    let (major, minor) = f.nth(2)?.split_once(':')?;
    let inode: u64 = f.next()?.parse().ok()?;
    let id = (
        u32::from_str_radix(major, 16).ok()?,
        u32::from_str_radix(minor, 16).ok()?,
        inode,
    );
    (inode != 0).then_some((lo..hi, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_files_parse_and_anonymous_ones_do_not() {
        assert_eq!(
            parse_maps_line("00400000-00452000 r-xp 00000000 08:02 173521 /bin/x"),
            Some((0x400000..0x452000, (8, 2, 173521)))
        );
        assert_eq!(
            parse_maps_line("7ffd1000-7ffd2000 rw-p 00000000 00:00 0 [stack]"),
            None
        );
        assert_eq!(parse_maps_line("garbage"), None);
    }

    #[test]
    fn this_function_is_in_a_file() {
        let f: fn(usize) -> Option<FileId> = mapped_file;
        assert!(mapped_file(f as usize).is_some());
    }
}
