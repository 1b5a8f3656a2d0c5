/// The hook script `slipway hooks install` writes (`hooks/slipway-hook`, the one source of
/// truth), embedded in the binary by SwiftPM's `.embedInCode` resource rule.
public enum HookScript {
    /// The script's text, with the placeholder line `SLIPWAY_INSTALLED_BIN=@SLIPWAY_BIN@`.
    public static var text: String { String(decoding: PackageResources.slipway_hook, as: UTF8.self) }
}
