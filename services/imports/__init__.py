"""The imports service: upload templates, trial runs, uploads and undo of spreadsheets staff send."""
