import Foundation

/// How a graph writes chat messages as its prompt (config.proto's `Chat`): each message with
/// its role's template, "{content}" standing for its text, then the generation prompt.
public struct ChatFormat: Sendable, Equatable {
  /// Templates by role ("system", "user", "assistant"); a role without one is refused.
  public let templates: [String: String]
  public let generationPrompt: String

  public static let roles = ["system", "user", "assistant"]

  /// The format a graph declares, checked: every template that is set holds "{content}".
  init(system: String, user: String, assistant: String, generationPrompt: String) throws(RuntimeError) {
    var templates: [String: String] = [:]
    for (role, template) in zip(Self.roles, [system, user, assistant]) where !template.isEmpty {
      guard template.contains("{content}") else {
        throw RuntimeError(.config, .invalidArgument, "chat.\(role) is \"\(template)\", which has no {content}")
      }
      templates[role] = template
    }
    guard !templates.isEmpty else {
      throw RuntimeError(.config, .invalidArgument, "chat declares no role's template (system, user, assistant)")
    }
    self.templates = templates
    self.generationPrompt = generationPrompt
  }

  /// The prompt of a conversation. A message's role must have a template.
  public func prompt(_ messages: [(role: String, content: String)], graph: String) throws(RuntimeError) -> String {
    guard !messages.isEmpty else { throw RuntimeError(.request, .invalidArgument, "messages is empty") }
    var text = ""
    for (i, message) in messages.enumerated() {
      guard let template = templates[message.role] else {
        let known = Self.roles.filter { templates[$0] != nil }.joined(separator: ", ")
        throw RuntimeError(.request, .invalidArgument, "messages[\(i)]: graph '\(graph)' has no chat template for role '\(message.role)' (it takes: \(known))")
      }
      text += template.replacingOccurrences(of: "{content}", with: message.content)
    }
    return text + generationPrompt
  }
}
