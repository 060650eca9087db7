"""What both training stages share: checkpoint and export callbacks, schedules, media logging, fault guards."""
