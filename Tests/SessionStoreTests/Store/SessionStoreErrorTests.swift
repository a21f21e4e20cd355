import Foundation
import Testing
@testable import SessionStore

/// The store's error keeps its cause: out of space and a failing disk are told apart.
@Suite struct SessionStoreErrorTests {
    @Test(arguments: [(ENOSPC, true), (EDQUOT, true), (EFBIG, true), (EIO, false), (EROFS, false)])
    func anIOFailureKeepsItsErrnoAndSaysWhetherItRanOutOfSpace(_ number: Int32, _ outOfSpace: Bool) {
        let error = SessionStoreError(LMDBError(code: number, function: "mdb_txn_commit"), while: "committing a write")
        #expect(error.code == .ioFailure)
        #expect(error.errorNumber == number)
        #expect(error.isOutOfSpace == outOfSpace)
        #expect(error.message.contains("out of space") == outOfSpace, "\(error.message)")
    }

    @Test func lmdbsOwnCodesCarryNoErrno() {
        let error = SessionStoreError(LMDBError(code: LMDBError.panic, function: "mdb_txn_begin"), while: "loading")
        #expect(error.errorNumber == nil)
        #expect(!error.isOutOfSpace)
    }
}
