import Foundation
import Testing

@testable import BursarConsole

/// The console's templates and assets are files compiled into bursard (Package.swift embeds
/// Sources/BursarConsole/Templates and Assets): a file left out of `Views.templates`, one listed
/// under another file's name, one that does not parse, or a page that does not extend the layout
/// fails here rather than in a browser.
@Suite("Web console templates: every file is compiled in, parses, and every page extends the layout")
struct ConsoleTemplateTests {
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Sources/BursarConsole").standardizedFileURL
    /// The partials; every other template but the layout is a page.
    static let partials: Set<String> = ["budget", "csrf", "secret", "key-table", "key-rows", "budget-alert", "history", "chart"]

    @Test("the embedded templates are exactly Templates/*.mustache, each with its own file's text; all parse, none renders a value unescaped")
    func embedded() throws {
        let dir = Self.sources.appendingPathComponent("Templates")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".mustache") }
        let names = Views.templates.map { $0.name }
        #expect(Set(names).count == names.count)
        #expect(Set(names) == Set(files.map { String($0.dropLast(".mustache".count)) }))
        #expect(Self.partials.isSubset(of: Set(names)))
        for (name, text) in Views.templates {
            let file = try? Data(contentsOf: dir.appendingPathComponent("\(name).mustache"))
            #expect(file.map { [UInt8]($0) } == text, "\(name)")
            let mustache = String(decoding: text, as: UTF8.self)
            #expect(!mustache.contains("{{{") && !mustache.contains("{{&"), "\(name)")
        }
        #expect(throws: Never.self) { _ = try Views.parse() }

        let assets = Self.sources.appendingPathComponent("Assets")
        #expect(try [UInt8](Data(contentsOf: assets.appendingPathComponent("console.css"))) == Assets.css)
        #expect(try [UInt8](Data(contentsOf: assets.appendingPathComponent("console.js"))) == Assets.js)
    }

    @Test("every page renders with an empty context inside the layout's skeleton, its content in <main>; a partial has no layout")
    func pages() throws {
        _ = try Views.parse()
        let views = Views()
        let pages = Views.templates.map { $0.name }.filter { $0 != "layout" && !Self.partials.contains($0) }
        #expect(pages.count >= 12)
        for name in Views.templates.map({ $0.name }) where name != "layout" {
            let html = views.html(name, title: "A <title>", [:], chrome: nil)
            if Self.partials.contains(name) {
                #expect(!html.contains("<main"), "\(name)")
                continue
            }
            #expect(html.hasPrefix("<!doctype html>\n"), "\(name)")
            #expect(html.contains("<title>A &lt;title&gt; · bursar</title>"), "\(name)")
            #expect(html.contains("<body data-page=\"\(name)\">"), "\(name)")
            #expect(html.hasSuffix("</main>\n</body>\n</html>\n"), "\(name)")
            let main = try #require(html.range(of: "<main id=\"main\" class=\"main\">"), "\(name)")
            let end = try #require(html.range(of: "</main>", range: main.upperBound..<html.endIndex), "\(name)")
            let content = html[main.upperBound..<end.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(content.hasPrefix("<"), "\(name): the page's content is in <main>")
        }
    }
}
