import Foundation
import Testing

@testable import BursarConsole

/// The console's templates and assets are files compiled into bursard (Package.swift embeds
/// Sources/BursarConsole/Templates and Assets): a file left out of `Views.templates`, one listed
/// under another file's name, or one that does not parse fails here rather than in a browser.
@Suite("Web console templates: every file is compiled in and parses")
struct ConsoleTemplateTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Sources/BursarConsole").standardizedFileURL

    @Test("the embedded templates are exactly Templates/*.mustache, each with its own file's text, and all parse")
    func embedded() throws {
        let dir = Self.sources.appendingPathComponent("Templates")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".mustache") }
        let names = Views.templates.map { $0.name }
        #expect(Set(names).count == names.count)
        #expect(Set(names) == Set(files.map { String($0.dropLast(".mustache".count)) }))
        for (name, text) in Views.templates {
            let file = try? Data(contentsOf: dir.appendingPathComponent("\(name).mustache"))
            #expect(file.map { [UInt8]($0) } == text, "\(name)")
        }
        #expect(throws: Never.self) { _ = try Views.parse() }

        let assets = Self.sources.appendingPathComponent("Assets")
        #expect(try [UInt8](Data(contentsOf: assets.appendingPathComponent("console.css"))) == Assets.css)
        #expect(try [UInt8](Data(contentsOf: assets.appendingPathComponent("console.js"))) == Assets.js)
    }
}
