// What the end-to-end tests read through window.mailchat: state, never a secret (no token).

export function debugHandle(app) {
  return {
    get conversationId() {
      return app.session?.controller.currentId ?? null;
    },
    get socketState() {
      return app.session?.socket.state ?? null;
    },
    get stats() {
      return app.session?.stats.snapshot() ?? null;
    },
    get streamsOpened() {
      return app.session?.stream.opened ?? 0;
    },
    get streamOpen() {
      return app.session?.stream.open ?? false;
    },
    get outboxSize() {
      return app.session?.controller.outbox.size ?? 0;
    },
    get duplicatesDropped() {
      const conversation = app.session?.controller.current;
      return conversation ? conversation.cursor.duplicates : 0;
    },
    get activeTimers() {
      return app.page.activeTimers + (app.session?.life.activeTimers ?? 0);
    },
    get mailboxes() {
      return app.session?.mailbox.model.view() ?? [];
    },
    get errorLog() {
      return app.errorLog.entries();
    },
    teardown: () => app.teardown(),
  };
}
