import Foundation
import SlipwayTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

// examples/dev end to end, as README says to run it (`cd examples/dev && slipway dev`): a copy of
// the example with its own project name, image name and port, `slipway dev --no-logs` in the
// background, the page fetched over HTTP, an edit served by the restarted httpd, and Ctrl-C.

/// `GET /` from 127.0.0.1:`port`: the status code and body, nil when nothing answers.
private func httpGet(port: Int) -> (status: Int, body: String)? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = in_addr_t(0x7f00_0001).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { return nil }
    let request = Array("GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
    guard write(fd, request, request.count) == request.count else { return nil }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n <= 0 { break }
        response += buffer[..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    let fields = text.prefix(while: { $0 != "\r" }).split(separator: " ")
    guard fields.count >= 2, fields[0].hasPrefix("HTTP/"), let status = Int(fields[1]) else { return nil }
    let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
    return (status, body)
}

/// Waits until `condition` holds (checked every 50 ms), at most `timeout`.
private func eventually(_ timeout: Duration, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}

extension DockerHeavyDevTests {
    @Suite(.requiresDockerEngine, .timeLimit(.minutes(5)))
    struct DevExampleTests {
        static let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../examples/dev").standardized.path

        @Test func theDevExampleServesItsPageServesAnEditAfterTheRestartAndCtrlCPutsTheDeployedContainerBack()
            async throws
        {
            try await withTemporaryDirectory { root in
                let name = "devexample-" + UUID().uuidString.lowercased().prefix(8)
                let image = "slipway-test/\(name)-web"
                let container = "\(name)-web-httpd"
                let port = try freePort()
                // The project beside (not inside) the directory the background process writes to, so that
                // nothing but the edit changes the image's context.
                let out = root + "/out"
                let dir = root + "/dev"
                try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
                #expect(try sh(["cp", "-R", Self.example, dir], cwd: "/").status == 0)
                let original = try String(contentsOfFile: dir + "/devspace.yaml", encoding: .utf8)
                let config =
                    original
                    .replacingOccurrences(of: "name: dev-example", with: "name: \(name)")
                    .replacingOccurrences(of: "PORT: \"8082\"", with: "PORT: \"\(port)\"")
                    .replacingOccurrences(of: "slipway-examples/dev-web", with: image)
                // The example must still have what the test changes (its name, its port, its image).
                #expect(config.contains("name: \(name)") && config.contains("\"\(port)\""))
                #expect(config.components(separatedBy: image).count == 4, "\(config)")
                try config.write(toFile: dir + "/devspace.yaml", atomically: true, encoding: .utf8)
                defer {
                    _ = try? sh(
                        [
                            "sh", "-c",
                            "docker ps -aq --filter \"label=dev.slipway.project=$1\" | xargs -r docker rm -f -v; "
                                + "docker images -q --filter \"reference=$2\" | sort -u | xargs -r docker rmi -f",
                            "sh", name, image,
                        ],
                        cwd: "/"
                    )
                }
                let page = try String(contentsOfFile: dir + "/site/index.html", encoding: .utf8)
                let heading = try #require(page.range(of: "<h1>[^<]*</h1>", options: .regularExpression))
                let firstHeading = String(page[heading])

                let dev = try await BackgroundSlipway.start(["dev", "--no-logs"], in: dir, out: out)
                defer { if dev.exitStatus == nil { dev.kill9() } }
                let watching = try await eventually(.seconds(90)) {
                    dev.stderr.contains("watching both sides") || dev.exitStatus != nil
                }
                try #require(watching && dev.exitStatus == nil, "\(dev.stdout)\n\(dev.stderr)")

                // The page, from the dev container (the restart helper is its PID 1).
                let served = try await eventually(.seconds(10)) {
                    httpGet(port: port)?.body.contains(firstHeading) == true
                }
                #expect(served, "\(String(describing: httpGet(port: port)))")
                let label = try await docker(
                    "inspect",
                    "--format",
                    "{{index .Config.Labels \"dev.slipway.dev\"}}",
                    container
                )
                #expect(label.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "web")
                // `pid N, M restarts, STATE`: M, or -1.
                func restarts() async throws -> Int {
                    let status = try await docker("exec", container, "/.slipway/helper", "status").stdout
                    let parts = status.components(separatedBy: ", ")
                    guard parts.count == 3, let count = parts[1].split(separator: " ").first else { return -1 }
                    return Int(count) ?? -1
                }
                let before = try await restarts()
                #expect(before >= 0)

                // An edit: synced, the onUpload command runs, httpd is restarted once and serves it.
                let edited = page.replacingOccurrences(of: firstHeading, with: "<h1>edited by DevExampleTests</h1>")
                try edited.write(toFile: dir + "/site/index.html", atomically: false, encoding: .utf8)
                let restarted = try await eventually(.seconds(20)) {
                    try await restarts() == before + 1
                        && httpGet(port: port)?.body.contains("edited by DevExampleTests") == true
                }
                #expect(restarted, "\(dev.stdout)\n\(dev.stderr)")
                #expect(try await eventually(.seconds(10)) { dev.stdout.contains("page changed") }, "\(dev.stdout)")
                #expect(dev.stdout.contains("dev: restart \(container)"), "\(dev.stdout)")

                // Ctrl-C: exit 0, the deployed container (the image's own page) back.
                dev.send(SIGINT)
                #expect(try await dev.finished(timeout: .seconds(60)) == 0, "\(dev.stdout)\n\(dev.stderr)")
                #expect(dev.stdout.contains("\(container) restored"), "\(dev.stdout)")
                let after = try await docker(
                    "inspect",
                    "--format",
                    "{{.State.Running}} {{index .Config.Labels \"dev.slipway.dev\"}}",
                    container
                )
                #expect(after.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "true", "\(after.stdout)")
                let deployedServes = try await eventually(.seconds(10)) {
                    httpGet(port: port)?.body.contains(firstHeading) == true
                }
                #expect(deployedServes, "\(String(describing: httpGet(port: port)))")
            }
        }
    }
}
