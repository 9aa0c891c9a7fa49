"""servicedesk's built-in chat plugin: a Slack/Mattermost-compatible notifier and slash command."""
