import ArgumentParser
import SlipwayCore

extension SlipwayCommand {
    struct Print: AsyncParsableCommand {
        // The name is spelled out: deriving it from the type costs a dynamic cast per run.
        static let configuration = CommandConfiguration(
            commandName: "print",
            abstract: "Print the config as devspace print does: profiles applied, variables resolved.",
            discussion: """
                As DevSpace, it prints the variables and the loaded path first, then the config \
                in DevSpace's form (its Go structs: names filled in, values in their fields' types, \
                empty fields left out). Values of password variables are masked.
                """
        )

        @OptionGroup var global: GlobalOptions

        @Flag(
            name: .customLong("skip-info"),
            help: "Print only the configuration, without the variables and the loaded path."
        )
        var skipInfo = false

        @Option(
            name: .customLong("dependency"),
            help: ArgumentHelp(
                "Print the config of this dependency instead (dotted for nested ones: dep1.dep2).",
                valueName: "NAME"
            )
        )
        var dependency: String?

        func run() async throws {
            var loaded = try await global.load()
            if let dependency {
                do {
                    loaded = try await ConfigLoader.loadDependency(
                        dependency,
                        of: loaded,
                        options: try global.loadOptions()
                    )
                } catch let error as ConfigError {
                    printDiagnostics(error.diagnostics)
                    throw ExitCode.failure
                }
            }
            let text: String
            do {
                text = try YAMLEmitter().emit(ConfigPrinter.devspaceForm(loaded))
            } catch {
                Terminal.error("\(loaded.displayPath): \(error.message)")
                throw ExitCode.failure
            }
            // DevSpace writes the information at its info level, so --silent leaves it out too.
            if !skipInfo && !global.silent { Terminal.out(Self.info(loaded)) }
            Terminal.out(text)
        }

        /// DevSpace's `printExtraInfo`: the variables the config used, and the loaded path.
        static func info(_ loaded: LoadedConfig) -> String {
            var out = "\n-------------------\n\nVars:\n"
            let secrets = Set(loaded.secretValues)
            let rows = loaded.variables.map { name, value -> [String] in
                let text = value.environmentText
                return [name, secrets.contains(text) ? ConfigPrinter.mask : text]
            }
            .sorted { $0[0] < $1[0] }
            if rows.isEmpty {
                out += "No vars found\n"
            } else {
                out += table(header: ["Name", "Value"], rows: rows)
            }
            out += "\n-------------------\n\nLoaded path: \(loaded.absolutePath)\n\n-------------------\n\n"
            return out
        }

        /// A table as DevSpace's `log.PrintTable` draws it (tablewriter without outer borders,
        /// each line indented by two spaces).
        static func table(header: [String], rows: [[String]]) -> String {
            let columns = header.count
            var widths = header.map(\.count)
            for row in rows {
                for i in 0..<min(columns, row.count) {
                    let longest =
                        row[i].split(separator: "\n", omittingEmptySubsequences: false).map(\.count).max() ?? 0
                    widths[i] = max(widths[i], longest)
                }
            }
            func line(_ cells: [String], center: Bool) -> String {
                var parts: [String] = []
                for i in 0..<columns {
                    let cell = i < cells.count ? cells[i].replacingOccurrences(of: "\n", with: " ") : ""
                    let gap = max(0, widths[i] - cell.count)
                    let left = center ? gap / 2 : 0
                    parts.append(
                        " " + String(repeating: " ", count: left) + cell + String(repeating: " ", count: gap - left)
                            + " "
                    )
                }
                return "  " + parts.joined(separator: "|") + "\n"
            }
            var out = "  \n"
            out += line(header.map { $0.uppercased() }, center: true)
            out += "  " + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "+") + "\n"
            for row in rows { out += line(row, center: false) }
            out += "  \n"
            return out
        }
    }
}
