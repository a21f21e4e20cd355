// sessionstore-demo: stores session and per-tab values, and on a second run shows that
// they survived the restart.
//
//   swift run sessionstore-demo [store-path]     (default: ./.sessionstore-demo)
import Foundation
import SessionStore

struct Profile: Codable, Sendable {
    var name: String
    var visits: Int
    var firstSeen: Date
}

struct Draft: Codable, Sendable {
    var text: String
    var savedAt: Date
}

extension Key where Value == Profile { static let profile = Key("profile") }
extension Key where Value == Draft { static let draft = Key("draft") }
extension Key where Value == [String] { static let history = Key("history") }

let path = CommandLine.arguments.dropFirst().first ?? FileManager.default.currentDirectoryPath + "/.sessionstore-demo"

do {
    let store = try SessionStore(path: path)
    let session = try store.session("demo-user-7Kq2")
    let tabs = [try session.instance("tab-1"), try session.instance("tab-2")]

    if var profile = try session.load(.profile) {
        print("Found a store from an earlier run at \(path):")
        print("  session profile: \(profile.name), visit \(profile.visits), first seen \(profile.firstSeen)")
        for tab in tabs {
            let draft = try tab.load(.draft)
            print("  \(tab.id) draft: \(draft.map { "\"\($0.text)\" saved \($0.savedAt)" } ?? "(none)")")
        }
        profile.visits += 1
        try session.save(profile, for: .profile)
        var history = try tabs[0].load(.history) ?? []
        history.append("visit \(profile.visits)")
        try tabs[0].save(history, for: .history)
        print("  tab-1 history: \(history.joined(separator: ", "))")
        print("Visit count is now \(profile.visits). Run again to see it grow; delete \(path) to start over.")
    } else {
        print("No earlier run found; creating a store at \(path).")
        try session.save(Profile(name: "Ada", visits: 1, firstSeen: Date()), for: .profile)
        try tabs[0].save(Draft(text: "Hello from tab 1", savedAt: Date()), for: .draft)
        try tabs[1].save(Draft(text: "Tab 2 has its own draft", savedAt: Date()), for: .draft)
        try tabs[0].save(["visit 1"], for: .history)
        print("  saved a session profile (shared by all tabs) and one draft per tab.")
        print("  session keys: \(try session.keys()), tab-1 keys: \(try tabs[0].keys())")
        print("Run the demo again: the values survive the restart.")
    }
    try store.close()
} catch {
    FileHandle.standardError.write(Data("sessionstore-demo: \(error)\n".utf8))
    exit(1)
}
