// The console's stylesheet and script, served from /console/assets/ (the Content-Security-Policy
// allows scripts and styles from the console itself only, so nothing is inline). They are
// Assets/console.css and Assets/console.js, compiled into bursard (Package.swift embeds them).

enum Assets {
    static let css: [UInt8] = PackageResources.console_css
    static let js: [UInt8] = PackageResources.console_js
}
