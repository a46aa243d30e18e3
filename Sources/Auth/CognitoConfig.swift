import FoundationEssentials
import HTTP
import Support

/// Which Cognito tokens the worker accepts (the variables in docs/configuration.md).
package struct CognitoConfig: Sendable, Equatable {
    package enum TokenUse: String, Sendable, CaseIterable {
        case id, access
    }

    /// AWS's `IssuerConfigurationType`: the two issuers a user pool can mint tokens with.
    package enum IssuerForm: String, Sendable, CaseIterable {
        /// `https://cognito-idp.{region}.amazonaws.com/{pool}`
        case original
        /// `https://issuer-cognito-idp.{region}.amazonaws.com/{pool}`, which AWS recommends.
        case updated

        package func issuer(region: String, poolID: String) -> String {
            switch self {
            case .original: "https://cognito-idp.\(region).amazonaws.com/\(poolID)"
            case .updated: "https://issuer-cognito-idp.\(region).amazonaws.com/\(poolID)"
            }
        }
    }

    package enum KeySource: Sendable, Equatable {
        /// `COGNITO_JWKS_URL`, or the configured issuer's own `.well-known/jwks.json`.
        case url(String)
        /// `COGNITO_JWKS_FILE`.
        case file(String)
    }

    /// `AWS_USER_POOLS_ID`, e.g. `ap-southeast-2_AbC123`.
    package var poolID: String
    /// The prefix of the pool id.
    package var region: String
    /// `AWS_APP_CLIENT_ID`: the app clients tokens must be issued for.
    package var clientIDs: [String]
    /// `COGNITO_TOKEN_USE`.
    package var tokenUses: Set<TokenUse>
    package var keySource: KeySource
    /// `COGNITO_LEEWAY_SECONDS`.
    package var leewaySeconds: Int
    /// `COGNITO_ADMIN_GROUP` and `COGNITO_RESOURCE_SERVER`: who may do what.
    package var authorization = Authorization()
    /// `COGNITO_ADMIN_GROUP`: members (by `cognito:groups`) may change any article.
    package var adminGroup: String? { authorization.adminGroup }
    /// `COGNITO_ISSUER`: the issuer the pool is configured with, which picks the default JWKS URL.
    package var issuerForm: IssuerForm = .original

    /// The configured issuer (what `check-config` prints).
    package var issuer: String { issuerForm.issuer(region: region, poolID: poolID) }
    /// The `iss` values a token may carry: the pool's two issuers, whichever is configured
    /// (as AWS's own verifier accepts), compared byte for byte.
    package var acceptedIssuers: [String] { IssuerForm.allCases.map { $0.issuer(region: region, poolID: poolID) } }

    /// `COGNITO_TOKEN_USE` as written: `id`, `access` or `id,access`.
    package var tokenUseText: String { TokenUse.allCases.filter(tokenUses.contains).map(\.rawValue).joined(separator: ",") }

    package static let maxLeewaySeconds = 60

    package static func fromEnvironment(_ value: (String) -> String?) throws(ConfigError) -> CognitoConfig {
        guard let poolID = value("AWS_USER_POOLS_ID") else {
            throw ConfigError("AWS_USER_POOLS_ID is not set: the Cognito user pool id, e.g. ap-southeast-2_AbC123")
        }
        let parts = poolID.split(separator: "_", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
            parts[0].allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }),
            parts[1].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) })
        else {
            throw ConfigError("AWS_USER_POOLS_ID must be <region>_<letters and digits>, e.g. ap-southeast-2_AbC123, got \"\(poolID)\"")
        }
        let region = String(parts[0])
        if let awsRegion = value("AWS_REGION"), awsRegion != region {
            throw ConfigError("AWS_REGION is \(awsRegion) but the user pool \(poolID) is in \(region)")
        }
        guard let clients = value("AWS_APP_CLIENT_ID") else {
            throw ConfigError("AWS_APP_CLIENT_ID is not set: the app client id(s) tokens are issued for, comma-separated")
        }
        let clientIDs = clients.split(separator: ",", omittingEmptySubsequences: false).map(\.trimmingSpaces)
        guard !clientIDs.contains(where: \.isEmpty) else {
            throw ConfigError("AWS_APP_CLIENT_ID has an empty client id: \"\(clients)\"")
        }
        let resourceServer = try Authorization.resourceServer(value("COGNITO_RESOURCE_SERVER"))
        // ID tokens carry no scopes: with a resource server, only access tokens unless asked.
        var tokenUses: Set<TokenUse> = resourceServer == nil ? [.id] : [.access]
        if let text = value("COGNITO_TOKEN_USE") {
            let uses = text.split(separator: ",", omittingEmptySubsequences: false).map {
                TokenUse(rawValue: $0.trimmingSpaces)
            }
            guard !uses.contains(nil) else {
                throw ConfigError("COGNITO_TOKEN_USE must be id, access or id,access, got \"\(text)\"")
            }
            tokenUses = Set(uses.compactMap { $0 })
        }
        var issuerForm = IssuerForm.original
        if let text = value("COGNITO_ISSUER") {
            guard let form = IssuerForm(rawValue: text) else {
                throw ConfigError("COGNITO_ISSUER must be original or updated, got \"\(text)\"")
            }
            issuerForm = form
        }
        let keySource: KeySource
        switch (value("COGNITO_JWKS_URL"), value("COGNITO_JWKS_FILE")) {
        case (.some, .some):
            throw ConfigError("set COGNITO_JWKS_URL or COGNITO_JWKS_FILE, not both")
        case (.some(let url), nil):
            guard url.hasPrefix("https://") || url.hasPrefix("http://") else {
                throw ConfigError("COGNITO_JWKS_URL must be an https:// or http:// URL, got \"\(url)\"")
            }
            keySource = .url(url)
        case (nil, .some(let file)):
            keySource = .file(file)
        case (nil, nil):
            keySource = .url(issuerForm.issuer(region: region, poolID: poolID) + "/.well-known/jwks.json")
        }
        var leeway = maxLeewaySeconds
        if let text = value("COGNITO_LEEWAY_SECONDS") {
            guard let seconds = Int(text), (0...maxLeewaySeconds).contains(seconds) else {
                throw ConfigError("COGNITO_LEEWAY_SECONDS must be a whole number from 0 to \(maxLeewaySeconds), got \"\(text)\"")
            }
            leeway = seconds
        }
        return CognitoConfig(
            poolID: poolID, region: region, clientIDs: clientIDs, tokenUses: tokenUses, keySource: keySource,
            leewaySeconds: leeway,
            authorization: Authorization(
                adminGroup: value("COGNITO_ADMIN_GROUP"), defaultRole: try Authorization.defaultRole(value("COGNITO_DEFAULT_ROLE")),
                resourceServer: resourceServer),
            issuerForm: issuerForm)
    }

    package init(
        poolID: String, region: String, clientIDs: [String], tokenUses: Set<TokenUse>, keySource: KeySource,
        leewaySeconds: Int, authorization: Authorization = Authorization(), issuerForm: IssuerForm = .original
    ) {
        self.poolID = poolID
        self.region = region
        self.clientIDs = clientIDs
        self.tokenUses = tokenUses
        self.keySource = keySource
        self.leewaySeconds = leewaySeconds
        self.authorization = authorization
        self.issuerForm = issuerForm
    }
}
