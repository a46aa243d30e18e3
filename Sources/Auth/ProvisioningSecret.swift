import Glibc
import Support

/// The secret the Post Confirmation Lambda signs its calls with: `PROVISIONING_SECRET`, or the
/// contents of the file `PROVISIONING_SECRET_FILE` names (one trailing newline dropped), which
/// must be a regular file that nobody but its owner and group can read and only its owner write.
package struct ProvisioningSecret: Sendable, Equatable, CustomStringConvertible {
    package static let minimumBytes = 32

    package let bytes: [UInt8]
    /// Where it came from, for `check-config` (never the secret itself).
    package let origin: String

    package var description: String { "*** (\(origin))" }

    package static func fromEnvironment(_ value: (String) -> String?) throws(ConfigError) -> ProvisioningSecret? {
        switch (value("PROVISIONING_SECRET"), value("PROVISIONING_SECRET_FILE")) {
        case (nil, nil):
            return nil
        case (.some, .some):
            throw ConfigError("set PROVISIONING_SECRET or PROVISIONING_SECRET_FILE, not both")
        case (let text?, nil):
            return try ProvisioningSecret(Array(text.utf8), origin: "from PROVISIONING_SECRET")
        case (nil, let path?):
            return try ProvisioningSecret(try read(path), origin: "from \(path)")
        }
    }

    private init(_ bytes: [UInt8], origin: String) throws(ConfigError) {
        guard bytes.count >= Self.minimumBytes else {
            throw ConfigError("the provisioning secret must be at least \(Self.minimumBytes) bytes (e.g. openssl rand -hex 32), got \(bytes.count)")
        }
        self.bytes = bytes
        self.origin = origin
    }

    private static func read(_ path: String) throws(ConfigError) -> [UInt8] {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw ConfigError(SystemError("PROVISIONING_SECRET_FILE \(path)"))
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw ConfigError("PROVISIONING_SECRET_FILE \(path) is not a regular file") }
        guard info.st_mode & 0o027 == 0 else {
            throw ConfigError(
                "PROVISIONING_SECRET_FILE \(path) has mode \(String(info.st_mode & 0o777, radix: 8)): others may read it or its group may write it (chmod 0640 or 0600)")
        }
        guard let file = fopen(path, "r") else {
            throw ConfigError(SystemError("PROVISIONING_SECRET_FILE \(path)"))
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count == 0 { break }
            bytes += chunk[0..<count]
            guard bytes.count <= 4096 else { throw ConfigError("PROVISIONING_SECRET_FILE \(path) is larger than 4 KiB") }
        }
        if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        return bytes
    }
}
