import Foundation
import Testing
@testable import CBORCoding

// Recursive Codable shapes, decoded at and past the default depth limit on a thread with a
// 512 KiB stack (the smallest a Swift concurrency or NIO thread may have).

final class DeepNode: Codable {
    var a: DeepNode?
}

struct DeepList: Codable {
    var children: [DeepList]
}

indirect enum DeepEnum: Codable {
    case leaf
    case node(DeepEnum)
}

/// CBOR text string bytes of an ASCII `text`.
private func text(_ text: String) -> [UInt8] {
    precondition(text.utf8.count < 24)
    return [0x60 | UInt8(text.utf8.count)] + Array(text.utf8)
}

/// `levels` nested maps `{"a": {"a": … {}}}`: a `DeepNode` chain `levels` CBOR levels deep.
func deepNodeBytes(_ levels: Int) -> [UInt8] {
    Array([[UInt8]](repeating: [0xA1] + text("a"), count: levels - 1).joined()) + [0xA0]
}

/// `{"children": [{"children": [ … {"children": []}]}]}` with `levels` CBOR levels (maps and arrays).
func deepListBytes(_ levels: Int) -> [UInt8] {
    precondition(levels % 2 == 0)
    let step: [UInt8] = [0xA1] + text("children") + [0x81]
    return Array([[UInt8]](repeating: step, count: levels / 2 - 1).joined()) + [0xA1] + text("children") + [0x80]
}

/// `{"node": {"_0": … {"leaf": {}}}}` with `levels` CBOR levels.
func deepEnumBytes(_ levels: Int) -> [UInt8] {
    precondition(levels % 2 == 0)
    let step: [UInt8] = [0xA1] + text("node") + [0xA1] + text("_0")
    return Array([[UInt8]](repeating: step, count: levels / 2 - 1).joined()) + [0xA1] + text("leaf") + [0xA0]
}

/// `levels` nested arrays `[[…[]]]`, definite or indefinite-length.
func deepArrayBytes(_ levels: Int, indefinite: Bool = false) -> [UInt8] {
    indefinite
        ? [UInt8](repeating: 0x9F, count: levels) + [UInt8](repeating: 0xFF, count: levels)
        : [UInt8](repeating: 0x81, count: levels - 1) + [0x80]
}

/// Decoded values are kept here, never freed: releasing a long `DeepNode` chain recurses too.
nonisolated(unsafe) var keptAlive: [Any] = []

/// Decodes every shape at `limit` levels (must succeed) and one level more (must throw a depth
/// error) with a decoder whose `maxDepth` is `limit`; returns what went wrong.
func deepDecodingProblems(limit: Int) -> [String] {
    var problems: [String] = []
    func check(_ name: String, _ levels: Int, _ decode: ([UInt8]) throws -> Any, _ make: (Int) -> [UInt8]) {
        do {
            keptAlive.append(try decode(make(levels)))
        } catch {
            problems.append("\(name) at \(levels) levels: \(error)")
        }
        do {
            keptAlive.append(try decode(make(levels + 2)))
            problems.append("\(name) at \(levels + 2) levels decoded")
        } catch {
            if decodingErrorDescription(error)?.contains("deeper than the limit of \(limit)") != true {
                problems.append("\(name) at \(levels + 2) levels: \(error)")
            }
        }
    }
    var decoder = CBORDecoder()
    decoder.maxDepth = limit
    var strict = decoder
    strict.deterministic = true
    let even = limit & ~1
    check("DeepNode", limit, { try decoder.decode(DeepNode.self, from: $0) }, deepNodeBytes)
    check("DeepNode, deterministic", limit, { try strict.decode(DeepNode.self, from: $0) }, deepNodeBytes)
    check("DeepList", even, { try decoder.decode(DeepList.self, from: $0) }, deepListBytes)
    check("DeepEnum", even, { try decoder.decode(DeepEnum.self, from: $0) }, deepEnumBytes)
    check("CBOR through the decoder", limit, { try decoder.decode(CBOR.self, from: $0) }, { deepArrayBytes($0) })
    check("CBOR(decoding:)", limit, { try CBOR(decoding: $0, maxDepth: limit) }, { deepArrayBytes($0) })
    check("CBOR, deterministic", limit, { try strict.decode(CBOR.self, from: $0) }, { deepArrayBytes($0) })
    // A DeepNode whose unknown key holds nested indefinite-length arrays: skipped, not decoded.
    check("skipped indefinite arrays", limit, { try decoder.decode(DeepNode.self, from: $0) }, {
        [0xA1] + text("z") + deepArrayBytes($0 - 1, indefinite: true)
    })
    return problems
}

/// Where a `StackProbe` was decoded: its stack address.
final class StackMark: @unchecked Sendable {
    // @unchecked Sendable: written and read on the one thread that runs the decode.
    var address = 0
}

extension CodingUserInfoKey {
    static let stackMark = CodingUserInfoKey(rawValue: "stackMark")!
}

/// The address of a local of the caller's caller's frame (about the stack pointer there).
@inline(never)
func currentStackAddress() -> Int {
    var marker = 0
    return withUnsafeMutablePointer(to: &marker) { Int(bitPattern: $0) }
}

/// Records the stack address where it is decoded, in the decoder's `StackMark`.
struct StackProbe: Decodable {
    init(from decoder: any Decoder) throws {
        (decoder.userInfo[.stackMark] as! StackMark).address = currentStackAddress()
    }
}

/// A `DeepNode` with a probe at the bottom.
final class ProbedNode: Decodable {
    var a: ProbedNode?
    var probe: StackProbe?
}

@Suite struct CBORDecoderDepthTests {
    @Test("The default depth limit times the stack a level takes is at most half of 512 KiB")
    func defaultDepthLeavesHalfOfA512KiBStack() throws {
        // 200 levels of {"a": …}, the last {"probe": 0}: the stack used per level.
        let levels = 200
        let input = Array([[UInt8]](repeating: [0xA1, 0x61, 0x61], count: levels).joined()) + [0xA1, 0x65] + Array("probe".utf8) + [0x00]
        var decoder = CBORDecoder()
        decoder.maxDepth = levels + 1
        let mark = StackMark()
        decoder.userInfo[.stackMark] = mark
        let top = currentStackAddress()
        keptAlive.append(try decoder.decode(ProbedNode.self, from: input))
        let perLevel = (top - mark.address) / levels
        #expect(perLevel > 100, "the probe should have been decoded \(levels) levels down")
        #expect(CBORDecoder.defaultMaxDepth * perLevel <= 256 * 1024, "\(perLevel) bytes of stack a level")
    }

    @Test("Decoding at the default depth limit fits a 512 KiB thread stack (in a child process, so a crash fails only this test)")
    func defaultDepthFitsA512KiBStack() async {
        await #expect(processExitsWith: .success) {
            let problems = onThread(stackSize: 512 * 1024) { deepDecodingProblems(limit: CBORDecoder.defaultMaxDepth) }
            for problem in problems { FileHandle.standardError.write(Data((problem + "\n").utf8)) }
            exit(problems.isEmpty ? 0 : 1)
        }
    }

    @Test func depthLimitIsExactForEveryShape() {
        // The same checks on the test's own thread, with a small limit.
        #expect(deepDecodingProblems(limit: 20) == [])
    }
}
