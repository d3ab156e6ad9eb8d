"""Admin bases shared by the apps."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the tracker writes itself: shown in the admin, never added or edited by hand. Deleting stays
    allowed (an operator may remove a row); ViewOnlyAdmin forbids that too."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ViewOnlyAdmin(ReadOnlyAdmin):
    """Rows only their writer may touch (the outbox, sync and import records)."""

    def has_delete_permission(self, request, obj=None):
        return False
