/// Swift source read for checks over the project's own code (layering, the CLI's boundary).
public enum SwiftSource {
    /// `text` with its comments and string literals blanked, its lines kept.
    public static func code(_ text: String) -> String {
        var out = ""
        let chars = Array(text)
        var i = 0
        var block = 0
        var string: (multiline: Bool, raw: Int)?
        while i < chars.count {
            let c = chars[i]
            let next: Character? = i + 1 < chars.count ? chars[i + 1] : nil
            if block > 0 {
                if c == "*" && next == "/" {
                    block -= 1
                    i += 2
                } else if c == "/" && next == "*" {
                    block += 1
                    i += 2
                } else {
                    out.append(c == "\n" ? "\n" : " ")
                    i += 1
                }
                continue
            }
            if let s = string {
                if c == "\\" && s.raw == 0 {
                    out += "  "
                    i += 2
                    continue
                }
                let quotes = s.multiline ? 3 : 1
                if c == "\"", i + quotes - 1 < chars.count, chars[i..<(i + quotes)].allSatisfy({ $0 == "\"" }),
                    i + quotes + s.raw <= chars.count,
                    chars[(i + quotes)..<(i + quotes + s.raw)].allSatisfy({ $0 == "#" })
                {
                    string = nil
                    out += String(repeating: "\"", count: quotes)
                    i += quotes + s.raw
                    continue
                }
                out.append(c == "\n" ? "\n" : " ")
                i += 1
                continue
            }
            if c == "/" && next == "/" {
                while i < chars.count && chars[i] != "\n" { i += 1 }
                continue
            }
            if c == "/" && next == "*" {
                block = 1
                i += 2
                continue
            }
            var raw = 0
            while i + raw < chars.count && chars[i + raw] == "#" { raw += 1 }
            if i + raw < chars.count && chars[i + raw] == "\"" {
                let multiline = i + raw + 2 < chars.count && chars[i + raw + 1] == "\"" && chars[i + raw + 2] == "\""
                string = (multiline, raw)
                let opening = raw + (multiline ? 3 : 1)
                out += String(repeating: " ", count: opening)
                i += opening
                continue
            }
            out.append(c)
            i += 1
        }
        return out
    }
}
