package store

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/dealcast/dealcast/internal/account"
)

// Role is account.Role, kept here so the store's callers need one import.
type Role = account.Role

// The roles of the platform (see package account).
const (
	RoleSeller   = account.RoleSeller
	RoleBuyer    = account.RoleBuyer
	RoleOperator = account.RoleOperator
)

// Account is a seller or a buyer.
type Account struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// table returns the table of a role's accounts; only sellers and buyers have one.
func table(role Role) string {
	if role == RoleSeller {
		return "sellers"
	}
	return "buyers"
}

// CreateAccount adds a seller or a buyer.
func (s *Store) CreateAccount(ctx context.Context, role Role, name string) (Account, error) {
	a := Account{ID: uuid.NewString(), Name: name, CreatedAt: s.timestamp()}
	_, err := s.exec(ctx, `INSERT INTO `+table(role)+` (id, name, created_at) VALUES ($1, $2, $3)`, a.ID, a.Name, a.CreatedAt)
	return a, translate(err)
}

// Account returns the seller or buyer with id.
func (s *Store) Account(ctx context.Context, role Role, id string) (Account, error) {
	var a Account
	err := s.pool.QueryRow(ctx, `SELECT id::TEXT, name, created_at FROM `+table(role)+` WHERE id = $1`, id).
		Scan(&a.ID, &a.Name, &a.CreatedAt)
	a.CreatedAt = a.CreatedAt.UTC()
	return a, translate(err)
}
