import BursarWireFuzzing
import Foundation

// The frame decoder's fuzz target. Built by deploy/fuzz.sh with
// `-sanitize=fuzzer,address -DBURSAR_FUZZ`, libFuzzer drives `LLVMFuzzerTestOneInput` and any
// violated property (see `FrameProperties`) aborts with the input saved. Built normally, it is a
// replay tool: `bursar-fuzz-frames FILE|DIR…` runs every input through the same properties.

/// libFuzzer's entry point.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrames(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    do {
        try FrameProperties.check(bytes)
    } catch {
        fatalError("frame property violated: \(error)")
    }
    return 0
}

#if BURSAR_FUZZ
/// libFuzzer's driver, for programs that have their own `main` (SwiftPM names this executable's
/// entry point `bursar_fuzz_frames_main`, so libFuzzer's own `main` is not linked in).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// The entry point in fuzzing builds: hands the command line to libFuzzer.
@_cdecl("bursar_fuzz_frames_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var vector = argv
    return LLVMFuzzerRunDriver(&count, &vector, fuzzFrames)
}
#else
@main
struct ReplayFrames {
    static func main() {
        var files: [String] = []
        for path in CommandLine.arguments.dropFirst() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("bursar-fuzz-frames: \(path): no such file or directory\n".utf8))
                exit(2)
            }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                files += names.sorted().map { "\(path)/\($0)" }
            } else {
                files.append(path)
            }
        }
        var failed = 0
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            do {
                try FrameProperties.check(Array(data))
            } catch {
                failed += 1
                print("\(file): \(error)")
            }
        }
        print("replayed \(files.count) input(s), \(failed) violation(s)")
        exit(failed == 0 ? 0 : 1)
    }
}
#endif
