internal import Crypto

/// Docker tags made from git branch names, for `${SLIPWAY_BRANCH_TAG}` and branch
/// environments.
///
/// A Docker tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; a branch name is almost anything
/// (`feature/Login_v2`, `fix/ümlaut`, `"quoted"`). The rules, applied to the name's UTF-8 bytes:
/// 1. `/` becomes `-` (`feature/Login_v2` → `feature-Login_v2`), as GitLab's `CI_COMMIT_REF_SLUG`
///    and most CI tools do. `feature/x` and `feature-x` therefore share a tag: the one
///    collision slipway accepts, because the readable form is what people look for.
/// 2. Every other byte outside `[A-Za-z0-9_.-]` (spaces, quotes, `$`, `(`, non-ASCII) becomes
///    `-`, and leading `.` and `-` are dropped.
/// 3. When rule 2 changed anything, or the result is longer than 128 characters, the tag ends
///    in `-` and the first 8 hexadecimal digits of the SHA-256 of the branch name (the result
///    cut to 119 characters first), so that branches differing only in what was replaced stay
///    distinct. A name with nothing left (`...`) becomes `branch-` and its hash.
///
/// The same branch always gives the same tag, on every machine. Nothing here runs a shell:
/// the name is only ever data.
public enum BranchTag {
    public static let maximumLength = 128
    static let hashLength = 8

    public static func tag(for branch: String) -> String {
        var out: [UInt8] = []
        var lossy = false
        for byte in branch.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"):
                out.append(byte)
            case UInt8(ascii: "/"):
                out.append(UInt8(ascii: "-"))
            default:
                out.append(UInt8(ascii: "-"))
                lossy = true
            }
        }
        // A tag starts with a letter, digit or `_`.
        let leading = out.prefix { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }.count
        if leading > 0 {
            out.removeFirst(leading)
            lossy = true
        }
        if out.isEmpty {
            return "branch-" + hash(branch)
        }
        if !lossy && out.count <= maximumLength {
            return String(decoding: out, as: UTF8.self)
        }
        let keep = maximumLength - hashLength - 1
        if out.count > keep { out.removeLast(out.count - keep) }
        return String(decoding: out, as: UTF8.self) + "-" + hash(branch)
    }

    private static func hash(_ branch: String) -> String {
        SHA256.hash(data: Array(branch.utf8)).withUnsafeBytes { String(hexString($0).prefix(hashLength)) }
    }
}
