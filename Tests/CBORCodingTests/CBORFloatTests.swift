import Foundation
import Testing
@testable import CBORCoding

@Suite struct CBORFloatTests {
    @Test("Every half-precision pattern widens and narrows back to itself")
    func allHalves() {
        for bits in 0 ... UInt16.max {
            let double = CBORFloat.doubleBits(fromHalf: bits)
            #expect(CBORFloat.shortest(Double(bitPattern: double)) == .half(bits), "\(bits)")
            // Every half is exactly a single; check against Swift's own conversion, not the helper.
            #expect(CBORFloat.singleBits(exactly: double) != nil, "\(bits)")
            if !Double(bitPattern: double).isNaN {
                #expect(CBORFloat.singleBits(exactly: double) == Float(Double(bitPattern: double)).bitPattern, "\(bits)")
                let f = Float(bitPattern: CBORFloat.singleBits(fromHalf: bits))
                #expect(Double(f) == Double(bitPattern: double))
            }
        }
    }

    @Test func halfValues() {
        #expect(Double(bitPattern: CBORFloat.doubleBits(fromHalf: 0x3C00)) == 1)
        #expect(Double(bitPattern: CBORFloat.doubleBits(fromHalf: 0x0001)) == 0x1p-24)
        #expect(Double(bitPattern: CBORFloat.doubleBits(fromHalf: 0x03FF)) == 0x1.FF8p-15)
        #expect(Double(bitPattern: CBORFloat.doubleBits(fromHalf: 0x7BFF)) == 65504)
        #expect(Double(bitPattern: CBORFloat.doubleBits(fromHalf: 0xFC00)) == -.infinity)
    }

    @Test("Random doubles and floats keep their bits through the shortest width")
    func randomBits() throws {
        var rng = SplitMix64(seed: 42)
        for _ in 0 ..< 50_000 {
            let d = Double(bitPattern: rng.next())
            let back = try CBOR(decoding: CBOR.float(d).encoded())
            guard case .float(let e) = back, e.bitPattern == d.bitPattern else {
                Issue.record("\(d.bitPattern) came back as \(back)")
                return
            }
            let f = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()))
            let encoded = try CBOREncoder().encodeBytes(f)
            #expect(encoded.count <= 5)
            #expect(try CBORDecoder().decode(Float.self, from: encoded).bitPattern == f.bitPattern)
            // A single-precision value never takes 9 bytes as a Double either.
            #expect(try CBOREncoder().encodeBytes(Double(f)).count <= 5 || f.isNaN)
        }
    }

    @Test func shortestChoice() {
        #expect(CBORFloat.shortest(1.0) == .half(0x3C00))
        #expect(CBORFloat.shortest(100000.0) == .single(0x47C3_5000))
        #expect(CBORFloat.shortest(1.1) == .double((1.1).bitPattern))
        #expect(CBORFloat.shortest(0x1p-149) == .single(1))       // smallest single subnormal
        #expect(CBORFloat.shortest(0x1p-150) == .double((0x1p-150).bitPattern))
        #expect(CBORFloat.shortest(-0.0) == .half(0x8000))
    }
}
