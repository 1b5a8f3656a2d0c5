internal import Crypto

private let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

/// Lowercase hexadecimal digits of `bytes`.
func hexString<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(hexDigits[Int(byte >> 4)])
        out.append(hexDigits[Int(byte & 0x0F)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// The value of one hexadecimal digit (either case), nil for any other byte.
func hexValue(_ digit: UInt8) -> UInt8? {
    switch digit {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
    default: return nil
    }
}

/// SHA-256 of bytes, as lowercase hex.
func sha256Hex(bytes: [UInt8]) -> String {
    SHA256.hash(data: bytes).withUnsafeBytes { hexString($0) }
}

/// SHA-256 of a text, as lowercase hex.
public func sha256Hex(_ text: String) -> String {
    SHA256.hash(data: Array(text.utf8)).withUnsafeBytes { hexString($0) }
}
